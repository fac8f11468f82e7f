"""Collect every ``recon.h5`` below a directory into one table (one row per run)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ptyframe.errors import DataValidationError
from ptyframe.io.results import read_result


@dataclass
class Run:
    """One reconstruction: where it is, its config and its per-epoch history."""

    path: Path
    config: dict[str, Any]
    history: dict[str, np.ndarray]
    status: str
    object: np.ndarray
    pixel_size_m: float
    row: dict[str, Any] = field(default_factory=dict)


def _last_finite(values: np.ndarray) -> tuple[float, int]:
    ok = np.flatnonzero(np.isfinite(values))
    if ok.size == 0:
        return float("nan"), -1
    return float(values[ok[-1]]), int(ok[-1])


def load_runs(root: str | Path) -> list[Run]:
    """Read every ``recon.h5`` below ``root`` (a run or a multirun directory)."""
    root = Path(root)
    if not root.exists():
        raise DataValidationError(f"{root}: no such directory. Give a run or multirun directory")
    paths = [root] if root.is_file() else sorted(root.rglob("recon.h5"))
    if not paths:
        raise DataValidationError(f"{root}: no recon.h5 below it; is it a ptyframe run directory?")
    runs = []
    for p in paths:
        stored = read_result(p)
        cfg = yaml.safe_load(str(stored.attrs.get("config", ""))) or {}
        hist = {k: np.asarray(v, dtype=float) for k, v in stored.history.arrays().items()}
        run = Run(
            p,
            cfg,
            hist,
            str(stored.attrs.get("status", "?")),
            stored.object,
            float(stored.attrs.get("pixel_size_m", 1.0)),
        )
        run.row = table_row(run)
        runs.append(run)
    return runs


def table_row(run: Run) -> dict[str, Any]:
    """Return the CSV row of ``run``: settings, final values and metrics at recorded epochs."""
    eng = run.config.get("engine") or {}
    data = run.config.get("data") or {}
    h = run.history
    row: dict[str, Any] = {
        "run": str(run.path.parent.resolve()),
        "status": run.status,
        "engine": eng.get("name", "?"),
        "inner": eng.get("inner", ""),
        "alpha": eng.get("alpha", float("nan")),
        "beta": eng.get("beta", float("nan")),
        "rho": eng.get("rho", float("nan")),
        "decimate": data.get("decimate", 1),
        "overlap": (data.get("scan") or {}).get("overlap", float("nan")),
        "epochs": int(len(h.get("epoch", []))),
        "seconds": float(np.nansum(h.get("seconds", np.zeros(0)))),
        "data_error": _last_finite(h.get("data_error", np.zeros(0)))[0],
    }
    for key in ("frc_half_nyquist", "frc_3q_nyquist", "nrmse"):
        vals = h.get(key)
        if vals is None:
            continue
        row[key], _ = _last_finite(vals)
        for i in np.flatnonzero(np.isfinite(vals)):
            row[f"{key}@{i + 1}"] = float(vals[i])
    return row


def write_csv(runs: list[Run], path: Path) -> Path:
    """Write the rows of ``runs`` (union of columns) to ``path``."""
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
        return "" if math.isnan(v) else f"{v:.6g}"
    return v
