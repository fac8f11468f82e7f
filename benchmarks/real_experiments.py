"""Real experiments: wrong positions, a drifting probe, a fluctuating flux; ptyframe and peers.

    make peers                                            # once: .venv-ptylab, .venv-ptychi
    .venv/bin/python benchmarks/real_experiments.py [--quick] [--cases pos_2px ...]
        [--tools ptyframe PtyLab pty-chi] [--sweeps N] [--reuse] [--no-page] [--no-timing]

Every case is the held-out natural-image scan of ``benchmarks/peers/cases.py`` (``natural``
phantom, 25 x 25 raster of 16 px steps with +-2 px jitter rounded to whole pixels, 128 x 128
windows, the defocused ``focused`` probe, 1e6 photons, Poisson noise, seed 0), simulated by
``ptyframe simulate``'s model with one nuisance of ``simulation.nuisances`` (``CASES``):
random position errors of 1, 2 and 4 px RMS per axis; a 2 % scale error with a 1 degree
rotation of the recorded scan; a probe whose defocus (100 um over the scan) or lateral
position (2 px in y, 4 px in x) drifts linearly along the scan; 10 % RMS flux fluctuation;
and the ideal scan without any (the reference each engine should reach). ``pos_2px_1e5`` is
``pos_2px`` at a tenth of the dose (``DOSE``): a check that the settings were not chosen for
the held-out case alone. ``--quick``: 64 x 64 windows on a 7 x 7 raster of 8 px steps, 20
sweeps (a smoke run).

Runs on each case's file, each tool in its own venv, one thread each (``benchmarks/peers``):

* ptyframe's fast engines ePIE, mPIE, LSQML with their defaults, without and with the
  corrections of the engine frame at their defaults (``CORRECTIONS``): position cases
  ``engine.refine.positions=true`` (the ideal case each correction in turn: nothing may get
  worse where there is no error), the scan-map
  case also ``engine.positions.scan_map=true``, the defocus-drift case
  ``engine.probe_variation.modes=3``, the flux case ``engine.flux.refine=true`` (LSQML
  declares positions only: its rows of the other two are not run). The lateral probe drift
  runs the position correction with the scan map instead of OPR: a probe shifted by ``d`` at
  position ``r_j`` gives the exit wave ``P(r - r_j - d) O(r)``, whose far-field intensity is
  that of the probe at ``r_j + d`` (the object's frame moves with it), i.e. a position error
  ``d`` (here a linear drift, which the scan map's drift term models), and a shift is far
  from low rank for a few eigen-probes;
* PtyLab 0.3.7 mPIE with ``positionCorrectionSwitch`` (its defaults otherwise);
* pty-chi 2.2.0 LSQML with its position correction, and OPR with 3 modes on the probe-drift
  cases, its intensity variation on the flux case (its defaults otherwise).

Mapping checks, on the ideal case: each tool's ePIE from the true probe (held fixed) must
align with the truth within ``score.MAPPING_TOLERANCE_PX``; on ``pos_2px``, each peer's
corrected run started from the true positions and the true probe must keep the positions
within ``POSITION_CHECK_PX`` RMS of the truth (a flipped or swapped axis in the position
mapping would walk them away) and align the object.

Scores: the runner's own FRC at 1/4 and 1/2 Nyquist and NRMSE against the truth object
(``score.py``: scale, phase and sub-pixel alignment, the lit region), and the positions'
2-D RMS distance to the truth after removing the global offset
(``ptyframe.engines.corrections.affine.position_rms_px``; for an uncorrected run, that of the
recorded positions). A run FAILS (the table says why) when it raises, times out, gives NaN,
scores like a constant object, fails its mapping check, or was asked to correct positions
(or to vary the probe) and returned them unchanged: a peer that fails silently.

Timed parts (each tool's run) hold the lock file named by the environment variable
``PTYFRAME_BENCH_LOCK`` (``flock``), when it is set, so that no two timings on a shared
machine overlap; seconds per sweep are the median of the run's sweeps. The table goes to stdout, to
``benchmarks/results/real_experiments[_quick].csv`` and, via ``_lib.results``, to
``docs/results/real_experiments.md``.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))
from compare import RunFailed, call, venv_python  # noqa: E402

from _lib.cases import QUICK  # noqa: E402
from _lib.results import Stamp, markdown_table, write_page  # noqa: E402
from _lib.score import MAPPING_TOLERANCE_PX, Row, Truth, score  # noqa: E402

#: the nuisances of each case (``simulation.nuisances``)
CASES: dict[str, dict[str, float]] = {
    "ideal": {},
    "pos_1px": {"position_error_px": 1.0},
    "pos_2px": {"position_error_px": 2.0},
    "pos_4px": {"position_error_px": 4.0},
    "pos_2px_1e5": {"position_error_px": 2.0},
    "scan_affine": {"scan_scale": 0.02, "scan_rotation_deg": 1.0},
    "probe_defocus": {"probe_defocus_drift_m": 100e-6},
    "probe_lateral": {"probe_shift_y_px": 2.0, "probe_shift_x_px": 4.0},
    "flux_10": {"flux_rms": 0.1},
}
#: photons per pattern of a case where it is not the held-out 1e6
DOSE = {"pos_2px_1e5": 1e5}
#: ptyframe's command-line overrides of each correction (``ptyframe.engines.corrections``)
CORRECTIONS = {
    "positions": ["engine.refine.positions=true"],
    "scan_map": ["engine.positions.scan_map=true"],
    "opr3": ["engine.probe_variation.modes=3"],
    "flux": ["engine.flux.refine=true"],
}
#: the corrections each ptyframe engine declares (``Capabilities``)
DECLARED = {
    "epie": CORRECTIONS.keys(),
    "mpie": CORRECTIONS.keys(),
    "lsqml": {"positions", "scan_map"},
}
#: a corrected peer run started at the true positions must stay within this RMS of them
POSITION_CHECK_PX = 0.25
#: a position correction that moved no position by more than this did nothing
UNCHANGED_PX = 1e-3
PTYFRAME_ENGINES = ("epie", "mpie", "lsqml")
#: the lock file that timed runs hold (``flock``), from ``PTYFRAME_BENCH_LOCK``; None: no lock
LOCK = Path(os.environ["PTYFRAME_BENCH_LOCK"]) if os.environ.get("PTYFRAME_BENCH_LOCK") else None


@dataclass
class Spec:
    """One run: tool, engine, the corrections asked for, and whether it is a check."""

    tool: str
    engine: str
    corrections: tuple[str, ...] = ()
    check: str = ""  # "" | "truth probe" | "truth positions"

    @property
    def label(self) -> str:
        return "+".join(self.corrections) if self.corrections else "none"


@dataclass
class Result:
    """A scored run: the peer table's row plus positions."""

    row: Row
    spec: Spec
    positions_rms_px: float = math.nan
    positions_start_px: float = math.nan
    extra: dict = field(default_factory=dict)


def peer_corrections(case: str) -> dict[str, tuple[str, ...]]:
    """Return the corrections each peer runs with on ``case``."""
    chi: tuple[str, ...] = ("positions",)
    if case.startswith("probe_"):
        chi = ("positions", "opr3")
    elif case.startswith("flux"):
        chi = ("positions", "flux")
    return {"PtyLab": ("positions",), "pty-chi": chi}


def plan(case: str, tools: list[str]) -> list[Spec]:
    """Return the runs of one case, interleaved tool by tool."""
    out: list[Spec] = []
    pc = peer_corrections(case)
    if case == "ideal":
        out += [Spec(t, e, check="truth probe") for t, e in CHECKS if t in tools]
    if case == "pos_2px":
        out += [
            Spec("PtyLab", "mPIE", pc["PtyLab"], check="truth positions"),
            Spec("pty-chi", "LSQML", pc["pty-chi"], check="truth positions"),
        ]
        out = [s for s in out if s.tool in tools]
    for engine in PTYFRAME_ENGINES:
        if "ptyframe" in tools:
            out.append(Spec("ptyframe", engine))
            for ours in ours_for(case):
                if set(ours) <= set(DECLARED[engine]):
                    out.append(Spec("ptyframe", engine, ours))
    if "PtyLab" in tools:
        out.append(Spec("PtyLab", "mPIE", pc["PtyLab"]))
    if "pty-chi" in tools:
        out.append(Spec("pty-chi", "LSQML", pc["pty-chi"]))
    return out


def ours_for(case: str) -> list[tuple[str, ...]]:
    """Return the corrections of each of ptyframe's corrected rows of ``case``: one row per
    case, and on the ideal case one per correction (nothing may get worse without an error)."""
    if case == "ideal":
        return [("positions",), ("opr3",), ("flux",)]
    if case.startswith("pos_"):
        return [("positions",)]
    if case.startswith("scan_") or case == "probe_lateral":
        return [("positions", "scan_map")]
    if case.startswith("probe_"):
        return [("opr3",)]
    return [("flux",)]


CHECKS = [("ptyframe", "epie"), ("PtyLab", "ePIE"), ("pty-chi", "EPIE")]


def simulate(case: str, nuisances: dict[str, float], quick: bool, folder: Path) -> Path:
    """Write the case's file (reused when present); return its path."""
    import ptyframe

    path = folder / f"{case}.h5"
    if path.exists():
        return path
    overrides = list(QUICK) if quick else []
    overrides.append(f"simulation.photons_per_pattern={DOSE.get(case, 1e6)!r}")
    overrides += [f"simulation.nuisances.{k}={v!r}" for k, v in nuisances.items()]
    sim = ptyframe.simulate_case("natural_1e6", overrides)
    folder.mkdir(parents=True, exist_ok=True)
    sim.write(path)
    return path


def locked(cmd: list[str]) -> list[str]:
    """Return ``cmd`` run under the benchmark lock (``LOCK``), if any."""
    return ["flock", str(LOCK), *cmd] if LOCK is not None else cmd


def run_peer(spec: Spec, data: Path, sweeps: int, out: Path, args) -> dict:
    """Run a peer's runner with the corrections of ``spec``; return its result arrays."""
    script = HERE / "peers" / ("run_ptylab.py" if spec.tool == "PtyLab" else "run_ptychi.py")
    cmd = [str(venv_python(spec.tool)), str(script), str(data), str(out)]
    cmd += ["--engine", spec.engine, "--sweeps", str(sweeps), "--threads", "1"]
    if "positions" in spec.corrections:
        cmd.append("--position-correction")
    for c in spec.corrections:
        if c.startswith("opr"):
            cmd += ["--opr", c[3:]]
    if "flux" in spec.corrections:
        cmd.append("--flux")
    if spec.check:
        cmd.append("--truth-probe")
    if spec.check == "truth positions":
        cmd.append("--truth-positions")
    if not (args.reuse and out.exists()):
        call(locked(cmd), 1, args.timeout, out.with_suffix(".log"))
    with np.load(out) as r:
        return {k: r[k] for k in r.files}


def run_one(case: str, spec: Spec, data: Path, truth: Truth, args, work: Path) -> Result:
    """Run and score one spec."""
    sweeps = args.check_sweeps if spec.check else args.sweeps
    start = "truth probe" if spec.check == "truth probe" else "default"
    row = Row(case, spec.tool, spec.engine, start, sweeps, 1)
    res = Result(row, spec)
    rec, true_pos = read_positions(data)
    res.positions_start_px = rms(rec if spec.check != "truth positions" else true_pos, true_pos)
    if not venv_python(spec.tool).exists():
        row.status = f"SKIPPED: the {spec.tool} venv is absent (make peers)"
        return res
    tag = f"{case}-{spec.tool}-{spec.engine}-{spec.label}-{spec.check or 'run'}-{sweeps}"
    out = work / (tag.replace(" ", "_") + ".npz")
    try:
        if spec.tool == "ptyframe":
            arrays = run_ours(data, spec, sweeps, out, args)
        else:
            arrays = run_peer(spec, data, sweeps, out, args)
    except RunFailed as exc:
        row.status = str(exc)
        return res
    except Exception as exc:
        row.status = f"FAILED: {type(exc).__name__}: {exc}"
        return res
    seconds = np.asarray(arrays["seconds_per_sweep"]) if not args.no_timing else np.array([])
    score(row, arrays["object"], seconds, truth)
    if "backend" in arrays:  # the sweep's backend as recon.h5 records it
        row.engine = f"{spec.engine} ({arrays['backend']})"
    positions = arrays.get("positions_px")
    res.positions_rms_px = rms(positions if positions is not None else rec, true_pos)
    if positions is not None:
        res.extra.update(positions_px=positions, recorded_px=rec, true_px=true_pos)
        if case.startswith("scan_"):
            res.extra["map"] = map_note(rec, positions, true_pos)
    judge(res, arrays, rec if spec.check != "truth positions" else true_pos)
    res.extra["recovered"] = recovered(data, peer_flux(arrays, spec))
    return res


def peer_flux(arrays: dict, spec: Spec) -> dict:
    """Return ``arrays`` with ``flux`` ``[N]`` from a peer's intensity variation: pty-chi's
    first OPR weight scales the probe, so the intensity factor is ``|w_j0|^2``."""
    w = arrays.get("probe_weights")
    if spec.tool == "ptyframe" or "flux" not in spec.corrections or w is None:
        return arrays
    return {**arrays, "flux": np.abs(np.asarray(w)[:, 0]) ** 2}


def recovered(data: Path, arrays: dict) -> str:
    """Return the recovered nuisance against the truth, as the table's words.

    Flux: the RMS error of the refined intensity factors ``c_j^2`` (each normalised to mean
    1) against ``/truth/flux``, beside the truth's RMS spread. OPR: ``R^2`` of the first
    variation's weights (real part after the best global phase) against the true defocus
    ``/truth/probe_defocus_m`` along the scan (1: the weights follow the drift exactly).
    """
    import h5py

    out = []
    with h5py.File(data, "r") as f:
        flux = np.asarray(f["truth/flux"]) if "truth/flux" in f else None
        z = np.asarray(f["truth/probe_defocus_m"]) if "truth/probe_defocus_m" in f else None
    if flux is not None and "flux" in arrays:
        est = np.asarray(arrays["flux"], dtype=np.float64).ravel()
        est = est / est.mean()
        err = float(np.sqrt(np.mean((est - flux) ** 2)))
        out.append(f"flux RMS error {err:.3f} (spread {float(flux.std()):.3f})")
    w = arrays.get("probe_weights")
    if z is not None and w is not None and np.ptp(z) > 0 and np.asarray(w).shape[-1] > 1:
        out.append(f"weights R^2 vs defocus {weight_r2(np.asarray(w)[:, 1], z):.2f}")
    return "; ".join(out) or "-"


def weight_r2(w: np.ndarray, z: np.ndarray) -> float:
    """Return ``R^2`` of the linear fit of ``w`` (complex, global phase removed) on ``z``."""
    wc = w - w.mean()
    phase = np.exp(-0.5j * np.angle(np.sum(wc * wc))) if np.iscomplexobj(wc) else 1.0
    wr = np.real(wc * phase)
    zc = z - z.mean()
    fit = (zc @ wr) / (zc @ zc) * zc
    total = float(np.sum(wr**2))
    return 1.0 - float(np.sum((wr - fit) ** 2)) / total if total > 0 else 0.0


def run_ours(data: Path, spec: Spec, sweeps: int, out: Path, args) -> dict:
    """Run ``ptyframe reconstruct`` (under the lock) with the engine's defaults and the
    corrections of ``spec``; return its object, seconds per sweep, refined positions and OPR
    weights (from ``recon.h5``)."""
    import h5py

    run_dir = out.with_suffix("")
    cmd = [
        str(ROOT / ".venv" / "bin" / "ptyframe"),
        "reconstruct",
        "data=file",
        f"data.path={data}",
        f"engine={spec.engine}",
        f"engine.epochs={sweeps}",
        "threads=1",
        "metrics.every=0",
        "output.images=false",
        "output.checkpoint_every=0",
        "output.overwrite=true",
        f"output.dir={run_dir}",
        f"hydra.run.dir={run_dir}",
    ]
    if spec.check:
        cmd += ["init.probe=truth", "engine.fix_probe=true"]
    for c in spec.corrections:
        cmd += CORRECTIONS[c]
    if not (args.reuse and (run_dir / "recon.h5").exists()):
        call(locked(cmd), 1, args.timeout, out.with_suffix(".log"))
    with h5py.File(run_dir / "recon.h5", "r") as f:
        status, done = f.attrs.get("status", "?"), int(f.attrs.get("epochs_done", -1))
        if status != "finished":
            raise RunFailed(f"FAILED: ptyframe run {status} after {done} epochs")
        arrays = {
            "object": np.asarray(f["object"])[0],
            "seconds_per_sweep": np.asarray(f["history/seconds"]),
            "backend": str(f.attrs.get("engine_backend", "?")),
        }
        if "positions" in spec.corrections:
            arrays["positions_px"] = np.asarray(f["positions_px"])
        for key in ("probe_weights", "flux"):
            if f"extras/{key}" in f:
                arrays[key] = np.asarray(f[f"extras/{key}"])
    return arrays


def judge(res: Result, arrays: dict, start_px: np.ndarray | None) -> None:
    """Mark silent failures: a correction asked for that changed nothing, a failed check."""
    row, spec = res.row, res.spec
    if row.status.startswith("FAILED"):
        return
    if "positions" in spec.corrections:
        pos = arrays.get("positions_px")
        if pos is None:
            row.status = "FAILED: position correction asked for, no positions returned"
            return
        moved = np.abs(np.asarray(pos, dtype=np.float64) - start_px).max()
        if not spec.check and moved < UNCHANGED_PX:
            row.status = "FAILED: position correction asked for, positions unchanged"
            return
    if any(c.startswith("opr") for c in spec.corrections):
        w = arrays.get("probe_weights")
        if w is None or np.abs(np.asarray(w)[:, 1:]).max() < 1e-4:
            row.status = "FAILED: probe variation asked for, its weights did not move"
            return
    if "flux" in spec.corrections:
        f = peer_flux(arrays, spec).get("flux")
        if f is None or float(np.std(np.asarray(f))) < 1e-6:
            row.status = "FAILED: flux refinement asked for, the flux did not move"
            return
    if spec.check == "truth positions":
        worst = max(abs(row.shift_y_px), abs(row.shift_x_px))
        if res.positions_rms_px > POSITION_CHECK_PX or worst > MAPPING_TOLERANCE_PX:
            row.status = (
                f"FAILED: position mapping check: positions {res.positions_rms_px:.2f} px RMS "
                f"from the truth (limit {POSITION_CHECK_PX}), object shift "
                f"({row.shift_y_px:+.2f}, {row.shift_x_px:+.2f}) px"
            )
        else:
            row.status = "position mapping ok"


def map_note(recorded_px: np.ndarray, refined_px: np.ndarray, true_px: np.ndarray) -> str:
    """Return the scan map fitted from the recorded to the refined positions beside the one
    from the recorded to the true positions (``corrections.affine.fit_scan_map``): scale in y
    and x, rotation in degrees, shear."""
    from ptyframe.engines.corrections.affine import fit_scan_map

    def text(p: np.ndarray) -> str:
        m = fit_scan_map(recorded_px, p).parameters()
        return (
            f"{m['scale_y']:.4f}/{m['scale_x']:.4f}, {m['rotation_deg']:+.3f} deg, "
            f"shear {m['shear']:+.4f}"
        )

    return f"map {text(refined_px)} (truth {text(true_px)})"


def read_positions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (recorded, true) positions ``[n, 2]`` of a case file (true = recorded if absent).

    A lateral probe drift ``s_j`` (``/truth/probe_shift_px``) is a position error: the
    positions that explain the data are the true ones plus ``s_j``.
    """
    import h5py

    with h5py.File(path, "r") as f:
        rec = np.asarray(f["metadata/probe_pos_px"], dtype=np.float64)
        tru = np.asarray(f["truth/positions_px"]) if "truth/positions_px" in f else rec
        if "truth/probe_shift_px" in f:
            tru = tru + np.asarray(f["truth/probe_shift_px"], dtype=np.float64)
    return rec, tru


def rms(positions_px: np.ndarray, truth_px: np.ndarray) -> float:
    """The 2-D RMS distance after removing the global offset (the project's definition)."""
    from ptyframe.engines.corrections.affine import position_rms_px

    return position_rms_px(np.asarray(positions_px, dtype=np.float64), truth_px)


HEADER = [
    "case",
    "tool",
    "engine",
    "corrections",
    "start",
    "sweeps",
    "s/sweep",
    "FRC 1/4",
    "FRC 1/2",
    "NRMSE",
    "positions RMS px (recorded -> after)",
    "recovered vs truth",
    "status",
]


def cells(r: Result) -> list[str]:
    """Return the table cells of a result."""
    row = r.row

    def f(v: float, fmt: str = "{:.3f}") -> str:
        return "-" if v != v else fmt.format(v)

    pos = f"{f(r.positions_start_px, '{:.2f}')} -> {f(r.positions_rms_px, '{:.2f}')}"
    return [
        row.case,
        row.tool,
        row.engine,
        r.spec.label,
        row.start,
        str(row.sweeps),
        f(row.seconds_per_sweep, "{:.2f}"),
        f(row.frc_0_25),
        f(row.frc_0_5),
        f(row.nrmse),
        pos,
        r.extra.get("recovered", "-"),
        "; ".join(x for x in (row.status, r.extra.get("map", "")) if x),
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small windows, 20 sweeps (smoke run)")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--tools", nargs="+", default=["ptyframe", "PtyLab", "pty-chi"])
    p.add_argument("--sweeps", type=int, default=None, help="default 100 (quick: 20)")
    p.add_argument("--check-sweeps", type=int, default=None, help="default 10 (quick: 5)")
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds per run")
    p.add_argument("--workdir", type=Path, default=ROOT / ".real-experiments-work")
    p.add_argument("--reuse", action="store_true", help="score results already in the workdir")
    p.add_argument("--no-page", action="store_true", help="do not write docs/results")
    p.add_argument(
        "--no-timing",
        action="store_true",
        help="run without the lock and leave the s/sweep column empty (scores only; the "
        "speed is benchmarks/correction_cost.py's)",
    )
    args = p.parse_args(argv)
    args.sweeps = args.sweeps or (20 if args.quick else 100)
    args.check_sweeps = args.check_sweeps or (5 if args.quick else 10)
    return args


def main(argv: list[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    stamp = Stamp()
    if args.no_timing:
        global LOCK
        LOCK = None
    work = args.workdir / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    name = "real_experiments_quick" if args.quick else "real_experiments"
    results: list[Result] = []
    floors: list[list[str]] = []
    print(" | ".join(HEADER), flush=True)
    for case in args.cases:
        data = simulate(case, CASES[case], args.quick, work)
        truth = Truth.read(data)
        floors.append(
            [case, *(f"{v:.3f}" for v in truth.constant_frc), f"{truth.constant_nrmse:.3f}"]
        )
        for spec in plan(case, args.tools):
            t0 = time.perf_counter()
            r = run_one(case, spec, data, truth, args, work)
            r.extra["wall_s"] = time.perf_counter() - t0
            results.append(r)
            print(" | ".join(cells(r)), flush=True)
            write_outputs(results, floors, stamp, args, name)
    return results


#: the case whose position corrections the page shows as pictures
PICTURE_CASE = "pos_2px"


def pictures(results: list[Result], page: str) -> str:
    """Draw the position corrections of ptyframe's corrected rows of ``PICTURE_CASE`` and the
    true errors (``ptyframe.io.correction_images``) into ``docs/figures``; return the
    page's Markdown for them."""
    from ptyframe.io.correction_images import position_corrections_image

    rows = [
        r
        for r in results
        if r.row.case == PICTURE_CASE and r.spec.tool == "ptyframe" and "positions_px" in r.extra
    ]
    if not rows:
        return ""
    folder = ROOT / "docs" / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    e = rows[0].extra
    name = f"{page}_{PICTURE_CASE}_truth.png"
    position_corrections_image(e["recorded_px"], e["true_px"], folder / name, "true errors")
    out = [
        f"\nPosition corrections on `{PICTURE_CASE}` (arrows from the recorded positions, mean "
        "move removed, drawn at the gain in each title; first: the true errors, recorded to "
        "true):\n",
        f"![true errors](../figures/{name})",
    ]
    for r in rows:
        name = f"{page}_{PICTURE_CASE}_{r.spec.engine}.png"
        position_corrections_image(
            r.extra["recorded_px"], r.extra["positions_px"], folder / name, r.spec.engine
        )
        out.append(f"![{r.spec.engine}](../figures/{name})")
    return "\n".join(out) + "\n"


def write_outputs(results: list[Result], floors, stamp: Stamp, args, name: str) -> None:
    """Write the CSV and (unless ``--no-page``) the results page."""
    out = ROOT / "benchmarks" / "results" / f"{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(cells(r) for r in results)
    if args.no_page:
        return
    body = markdown_table(HEADER, [cells(r) for r in results])
    body += pictures(results, name)
    body += "\nWhat a constant object scores on each case (the metric's floor):\n\n"
    body += markdown_table(["case", "FRC 1/4", "FRC 1/2", "FRC 3/4", "NRMSE"], floors)
    about = (
        "Each case of `benchmarks/real_experiments.py` (module docstring: the natural-image "
        "scan with one nuisance each), scored against the truth with the project's FRC and "
        "NRMSE and the positions' RMS distance to the truth after removing the global offset. "
        "Peers, where the command's --tools name them: PtyLab 0.3.7 mPIE with its position "
        "correction, pty-chi 2.2.0 LSQML with its position correction, OPR (probe-drift "
        "cases) and intensity variation (flux case). "
        "ptyframe's rows are its fast engines at their defaults, without and with the "
        "corrections of the engine frame at their defaults (module docstring); the engine "
        "column names the sweep's backend as recon.h5 records it."
    )
    if args.reuse:
        about += (
            " Rows marked reused (`--reuse`) were scored from the results a run of the same "
            "cases left in the work folder."
        )
    if args.no_timing:
        about += (
            " This run was not timed (`--no-timing`: no lock, the machine shared): the s/sweep "
            "column is empty; the corrections' cost per sweep is the results page "
            "`correction_cost`."
        )
    write_page(name, "Real experiments: position errors, probe drift, flux", body, stamp, about)


if __name__ == "__main__":
    main()
