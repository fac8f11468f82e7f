"""Collect every ``recon.h5`` below a directory into one table (one row per run).

A row holds the run's settings (engine, alpha, beta, rho, overlap / decimation, dose), its
final values (data error, FRC at 1/4, 1/2 and 3/4 Nyquist, NRMSE, wall time = sum of
``/history/seconds``), ``epochs`` (configured) and ``epochs_done`` (recorded; fewer when a
run diverged or was interrupted), and every recorded metric value as ``<metric>@<epoch>``
(1-based epoch count, e.g. ``frc_half_nyquist@150``). The final FRC curve comes from
``/final/frc`` and ``/final/freq_per_m`` (written by the runner when the dataset has a ground
truth); for older results it is recomputed from ``/object`` and the truth of the run's
dataset (the data file, or the simulation rebuilt from the config for ``data=simulated``).

Runs recorded before the FRC compared windowed deviations (their history has
``frc_half_nyquist`` but no ``frc_quarter_nyquist``) hold FRC values whose floor for a
constant object is far above 0. Their final FRC curve and band values are recomputed from
``/object`` with the current metric where the truth can be rebuilt, their per-epoch FRC
columns are dropped, and the row says so in ``frc_metric`` (``recomputed-final`` or
``pre-fix``, against ``windowed`` for current runs).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ptyframe.errors import DataValidationError, PtyframeError
from ptyframe.io.results import RESULT_FILE, read_result

log = logging.getLogger(__name__)

#: Metrics recorded per epoch that the table reports at every recorded epoch.
METRICS = ("frc_quarter_nyquist", "frc_half_nyquist", "frc_3q_nyquist", "nrmse")
#: Row keys that describe how a run was set up (besides alpha and beta).
SETTINGS = ("inner", "rho", "overlap", "decimate", "n_tiles", "i0_origin", "photons_per_pattern")


@dataclass
class Run:
    """One reconstruction: where it is, its config, history, result and table row."""

    path: Path
    config: dict[str, Any]
    history: dict[str, np.ndarray]
    status: str
    object: np.ndarray
    probe: np.ndarray
    positions_px: np.ndarray
    pixel_size_m: float
    #: ``(freq_per_m [n_bins], frc [n_bins])`` of the final object, or None without truth.
    frc_curve: tuple[np.ndarray, np.ndarray] | None = None
    row: dict[str, Any] = field(default_factory=dict)

    @property
    def object_2d(self) -> np.ndarray:
        """Return the object ``[Ny, Nx]`` (the product of the slices of a multislice one)."""
        return np.prod(self.object, axis=0) if self.object.ndim == 3 else self.object

    def illumination(self) -> np.ndarray:
        """Return ``sum_r sum_k |P_k(. - r)|^2`` ``[Ny, Nx]`` from the stored probe/positions."""
        from ptyframe.metrics.illumination import illumination_map

        return illumination_map(self.probe, self.positions_px, self.object_2d.shape)


def _last_finite(values: np.ndarray) -> float:
    ok = np.flatnonzero(np.isfinite(values))
    return float(values[ok[-1]]) if ok.size else float("nan")


def _final_curve(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    import h5py

    with h5py.File(path, "r") as f:
        if "final/frc" in f and "final/freq_per_m" in f:
            return np.asarray(f["final/freq_per_m"][()]), np.asarray(f["final/frc"][()])
    return None


def load_runs(root: str | Path, recompute_frc: bool = True) -> list[Run]:
    """Read every ``recon.h5`` below ``root`` (a run or multirun directory, or one file)."""
    root = Path(root)
    if not root.exists():
        raise DataValidationError(f"{root}: no such directory. Give a run or multirun directory")
    paths = [root] if root.is_file() else sorted(root.rglob(RESULT_FILE))
    if not paths:
        raise DataValidationError(f"{root}: no recon.h5 below it; is it a ptyframe run directory?")
    runs = []
    for p in paths:
        stored = read_result(p)
        cfg = yaml.safe_load(str(stored.attrs.get("config", ""))) or {}
        run = Run(
            path=p,
            config=cfg,
            history={k: np.asarray(v, dtype=float) for k, v in stored.history.arrays().items()},
            status=str(stored.attrs.get("status", "?")),
            object=stored.object,
            probe=stored.probe,
            positions_px=stored.positions_px,
            pixel_size_m=float(stored.attrs.get("pixel_size_m", float("nan"))),
            frc_curve=_final_curve(p),
        )
        run.row = table_row(run)
        if "frc_half_nyquist" in run.history and "frc_quarter_nyquist" not in run.history:
            run.row["frc_metric"] = "pre-fix"
            run.frc_curve = None  # recompute with the current metric
            log.warning("%s: FRC recorded by the pre-fix metric (vacuum edge floor)", p)
        elif "frc_half_nyquist" in run.history:
            run.row["frc_metric"] = "windowed"
        runs.append(run)
    if recompute_frc:
        fill_frc_curves(runs)
    return runs


def table_row(run: Run) -> dict[str, Any]:
    """Return the CSV row of ``run``: settings, final values and metrics at recorded epochs."""
    eng = run.config.get("engine") or {}
    data = run.config.get("data") or {}
    sim = data.get("simulation") or {}
    h = run.history
    nan = float("nan")
    row: dict[str, Any] = {
        "run": str(run.path.parent.resolve()),
        "status": run.status,
        "engine": str(eng.get("name", "?")),
        "inner": str(eng.get("inner", "")),
        "alpha": float(eng.get("alpha", nan)),
        "beta": float(eng.get("beta", nan)),
        "rho": float(eng.get("rho", nan)),
        "overlap": float((data.get("scan") or {}).get("overlap", nan)),
        "decimate": int(data.get("decimate", 1) or 1),
        "n_tiles": int(run.positions_px.shape[0]),
        "i0_origin": float(sim.get("i0_origin") or nan),
        "photons_per_pattern": float(sim.get("photons_per_pattern") or nan),
        "epochs": int(eng.get("epochs", len(h.get("epoch", [])))),
        "epochs_done": int(len(h.get("epoch", []))),
        "seconds": float(np.nansum(h.get("seconds", np.zeros(0)))),
        "data_error": _last_finite(h.get("data_error", np.zeros(0))),
        "validation_error": _last_finite(h.get("validation_error", np.zeros(0))),
    }
    for key in METRICS:
        vals = h.get(key)
        row[key] = nan if vals is None else _last_finite(vals)
    for key in METRICS:
        vals = h.get(key)
        if vals is None:
            continue
        for i in np.flatnonzero(np.isfinite(vals)):
            row[f"{key}@{int(h['epoch'][i]) + 1}"] = float(vals[i])
    return row


def fill_frc_curves(runs: list[Run]) -> None:
    """Recompute the final FRC curve of runs stored without one, where a truth is available."""
    from ptyframe.metrics.frc import frc_against_truth

    cache: dict[str, Any] = {}
    for run in runs:
        if run.frc_curve is not None or not run.config.get("data"):
            continue
        key = yaml.safe_dump(run.config["data"], sort_keys=True)
        if key not in cache:
            cache[key] = _truth_of(run.config["data"])
        truth = cache[key]
        if truth is None or truth[0].shape != run.object_2d.shape:
            continue
        try:
            res, _ = frc_against_truth(run.object_2d, truth[0], truth[1], truth[2])
        except (ValueError, PtyframeError) as exc:
            log.info("%s: no FRC curve (%s)", run.path, exc)
            continue
        run.frc_curve = (np.asarray(res.freq_per_m), np.asarray(res.frc))
        if run.row.get("frc_metric") == "pre-fix":
            _replace_prefix_values(run, res)


def _replace_prefix_values(run: Run, res: Any) -> None:
    """Put the current metric's final band values into a pre-fix run's row (module doc)."""
    from ptyframe.metrics.frc import REPORTED_BANDS

    for f, stem in REPORTED_BANDS.items():
        run.row[f"frc_{stem}_nyquist"] = res.band(f)
    for key in [k for k in run.row if k.startswith("frc_") and "@" in k]:
        del run.row[key]
    run.history = {k: v for k, v in run.history.items() if not k.startswith("frc_")}
    run.row["frc_metric"] = "recomputed-final"


def _truth_of(data_cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None, float] | None:
    """Return ``(object [Ny, Nx], illumination or None, pixel size)`` of a dataset config."""
    from ptyframe.metrics.illumination import truth_reference
    from ptyframe.plugins import default_registry

    try:
        ds = default_registry().build("dataset", data_cfg)
    except (PtyframeError, OSError) as exc:
        log.info("cannot rebuild the dataset for the FRC (%s)", exc)
        return None
    reference = truth_reference(ds)
    if reference is None:
        return None
    return reference[0], reference[1], float(ds.geometry.pixel_size_m)


def write_csv(runs: list[Run], path: Path) -> Path:
    """Write the rows of ``runs`` (union of their columns, in first-seen order) to ``path``."""
    import csv

    cols: list[str] = []
    for r in runs:
        cols += [c for c in r.row if c not in cols]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in runs:
            w.writerow({c: _fmt(r.row.get(c, "")) for c in cols})
    return path


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return v


def score(run: Run) -> float:
    """Return how good a run is: FRC at 1/2 Nyquist, else minus the final data error."""
    frc = run.row.get("frc_half_nyquist", float("nan"))
    if isinstance(frc, float) and math.isfinite(frc):
        return frc
    err = run.row.get("data_error", float("nan"))
    return -err if isinstance(err, float) and math.isfinite(err) else -math.inf


def has_frc(runs: list[Run]) -> bool:
    """Return whether any run has a finite FRC at 1/2 Nyquist."""
    return any(math.isfinite(r.row.get("frc_half_nyquist", float("nan"))) for r in runs)


def variant(run: Run, varying: tuple[str, ...]) -> tuple[Any, ...]:
    """Return the values of the ``varying`` settings of ``run`` (a grouping key)."""
    return tuple(_key(run.row.get(k)) for k in varying)


def varying_settings(runs: list[Run], keys: tuple[str, ...] = SETTINGS) -> tuple[str, ...]:
    """Return the keys among ``keys`` whose value differs between runs of the same engine.

    Engine-specific settings (``rho`` only for PINE) do not count as differences between
    engines, so ePIE and PINE runs of one case stay in one group.
    """
    out = []
    engines = {r.row["engine"] for r in runs}
    for k in keys:
        for e in engines:
            if len({_key(r.row.get(k)) for r in runs if r.row["engine"] == e}) > 1:
                out.append(k)
                break
    return tuple(out)


def label(run: Run, keys: tuple[str, ...]) -> str:
    """Return ``"overlap 0.75, i0_origin 100"`` for the ``keys`` of ``run``."""
    parts = []
    for k in keys:
        v = run.row.get(k)
        parts.append(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}")
    return ", ".join(parts)


def _key(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return v
