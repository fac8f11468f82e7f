"""FRC against wall-clock time: every ptyframe engine beside PtyLab's mPIE on the same files.

    make peers        # once (PtyLab's venv; or pass --ptylab-python)
    python benchmarks/quality_vs_time.py [--cases natural film] [--sweeps 60]
        [--engines epie rpie mpie lsqml minibatch_pie pine] [--peer-engines mPIE]
        [--ptylab-python .venv-ptylab/bin/python] [--out benchmarks/results/quality_vs_time]

Cases (simulated by ``benchmarks/_lib/cases.py``'s ``Case``, written as data-exchange files
that both tools read; kept small so that the whole run takes minutes on one core):

``natural``
    121 patterns of 128 x 128 (11 x 11 raster, 16 px step, +-2 px jitter rounded to whole
    pixels), object ~292 x 292 px, ``natural`` phantom, 1e6 photons per pattern, Poisson.
``film``
    The particle film of ``conf/case/particle_film_small.yaml``: 81 patterns of 128 x 128
    (9 x 9 raster, same step and jitter), object ~260 x 260 px, 1e5 photons, Poisson.

Every engine starts from its defaults (disk probe, vacuum object), one torch thread. The
ptyframe engines advance one sweep each in turn (interleaved, so that load changes hit all
alike); the time axis is each engine's own summed sweep time (``EpochReport.seconds``),
scoring excluded. PtyLab 0.3.7 runs in its venv (``benchmarks/peers/run_ptylab.py``,
``--snapshots``: the object is copied after the chosen sweeps, untimed), one thread. All
objects are scored by ``benchmarks/_lib/score.py`` (``ptyframe.metrics``: FRC at 1/2 Nyquist
and NRMSE of the windowed deviations). Writes ``OUT.csv`` (one row per engine and
checkpoint) and ``OUT.png`` (FRC at 1/2 Nyquist against seconds, one panel per case).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.measurements import Measurements
from ptyframe.plugins import default_registry

from _lib.cases import small_cases
from _lib.engines import prepared_engine
from _lib.score import Truth

HERE = Path(__file__).resolve().parent

ENGINES = ["epie", "rpie", "mpie", "lsqml", "minibatch_pie", "pine"]
FIELDS = ["case", "tool", "engine", "sweeps", "seconds", "nrmse", "frc_half_nyquist"]


def checkpoints(sweeps: int) -> list[int]:
    """Return roughly log-spaced sweep counts up to ``sweeps`` (always ending on it)."""
    marks = sorted({int(round(v)) for v in np.geomspace(1, sweeps, 14)} | {sweeps})
    return [k for k in marks if 1 <= k <= sweeps]


def run_ptyframe(
    data: PtychoDataset, truth: Truth, names: list[str], sweeps: int, case: str
) -> list[dict]:
    """Run ``names`` interleaved sweep by sweep; return the rows at the checkpoints."""
    registry = default_registry()
    meas = Measurements.from_dataset(data)
    marks = set(checkpoints(sweeps))
    runs = {}
    for name in names:
        warm, _ = prepared_engine(registry, name, data, meas, epochs=1)
        warm.step(0)  # compile / cache load outside the timing
        engine, state = prepared_engine(registry, name, data, meas, epochs=sweeps)
        runs[name] = (engine, state, engine.iterate(), [0.0])
    rows = []
    for k in range(1, sweeps + 1):
        for name, (_, state, it, clock) in runs.items():
            clock[0] += next(it).seconds
            if k in marks:
                m = truth.measure(state.object[0].detach().cpu().numpy().copy())
                rows.append(_row(case, "ptyframe", name, k, clock[0], m))
    return rows


def run_ptylab(
    python: str, path: Path, truth: Truth, engine: str, sweeps: int, case: str
) -> list[dict]:
    """Run PtyLab's ``engine`` on ``path`` with snapshots; return the rows."""
    marks = checkpoints(sweeps)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ptylab.npz"
        cmd = [python, str(HERE / "peers" / "run_ptylab.py"), str(path), str(out)]
        cmd += ["--engine", engine, "--sweeps", str(sweeps), "--threads", "1"]
        cmd += ["--snapshots", ",".join(map(str, marks))]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        seconds = np.load(out)["seconds_per_sweep"]
        snaps = np.load(f"{out}.snapshots.npz")
        clock = np.cumsum(seconds)
        return [
            _row(case, "PtyLab", engine, int(k), float(clock[k - 1]), truth.measure(obj))
            for k, obj in zip(snaps["sweeps"], snaps["objects"], strict=True)
        ]


def _row(case: str, tool: str, engine: str, k: int, seconds: float, m: dict) -> dict:
    return {
        "case": case,
        "tool": tool,
        "engine": engine,
        "sweeps": k,
        "seconds": round(seconds, 4),
        "nrmse": round(m["nrmse"], 4),
        "frc_half_nyquist": round(m["frc_0.5"], 4),
    }


def plot(rows: list[dict], path: Path) -> None:
    """FRC at 1/2 Nyquist against seconds, one panel per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(r["case"] for r in rows))
    fig, axes = plt.subplots(1, len(cases), figsize=(6 * len(cases), 4.5), squeeze=False)
    for ax, case in zip(axes[0], cases, strict=True):
        labels = dict.fromkeys((r["tool"], r["engine"]) for r in rows if r["case"] == case)
        for tool, engine in labels:
            pts = [
                r for r in rows if r["case"] == case and (r["tool"], r["engine"]) == (tool, engine)
            ]
            style = "k--o" if tool != "ptyframe" else "-o"
            ax.plot(
                [p["seconds"] for p in pts],
                [p["frc_half_nyquist"] for p in pts],
                style,
                ms=3,
                label=f"{tool} {engine}",
            )
        ax.set_xscale("log")
        ax.set_xlabel("wall-clock seconds (one thread, sweeps only)")
        ax.set_ylabel("FRC at 1/2 Nyquist")
        ax.set_title(case)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", nargs="+", default=["natural", "film"])
    ap.add_argument("--sweeps", type=int, default=60)
    ap.add_argument("--engines", nargs="+", default=ENGINES)
    ap.add_argument("--peer-engines", nargs="*", default=["mPIE"])
    ap.add_argument("--ptylab-python", default=str(HERE.parent / ".venv-ptylab/bin/python"))
    ap.add_argument("--workdir", default=None, help="where the case files go (default: temp)")
    ap.add_argument("--out", default=str(HERE / "results" / "quality_vs_time"))
    ap.add_argument(
        "--denoiser-loop",
        choices=["fast", "reference"],
        default="fast",
        help="cpl nets: the fast inference path or the plain loop (the same map, for timing)",
    )
    args = ap.parse_args()
    if args.denoiser_loop == "reference":
        from ptyframe.denoise.cpl import CplDenoiser

        CplDenoiser.forward = CplDenoiser.reference_forward  # type: ignore[method-assign]
    torch.set_num_threads(1)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="qvt-"))
    all_cases = small_cases(args.sweeps)
    rows: list[dict] = []
    for name in args.cases:
        path = all_cases[name].simulate(work / f"{name}.h5")
        truth = Truth.read(path)
        data = PtychoDataset.open(path)
        for peer in args.peer_engines:
            rows += run_ptylab(args.ptylab_python, path, truth, peer, args.sweeps, name)
        rows += run_ptyframe(data, truth, args.engines, args.sweeps, name)
        _print_final(rows, name)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    plot(rows, out.with_suffix(".png"))
    print(f"\nwrote {out.with_suffix('.csv')} and {out.with_suffix('.png')}")


def _print_final(rows: list[dict], case: str) -> None:
    """Print the case's table: per engine the last checkpoint and the FRC at half its time."""
    print(f"\n{case}: | tool | engine | sweeps | seconds | s / sweep | NRMSE | FRC @ 1/2 Ny |")
    print("|---|---|---|---|---|---|---|")
    last = {}
    for r in rows:
        if r["case"] == case:
            last[(r["tool"], r["engine"])] = r
    for (tool, engine), r in last.items():
        print(
            f"| {tool} | {engine} | {r['sweeps']} | {r['seconds']:.2f} | "
            f"{r['seconds'] / r['sweeps']:.3f} | {r['nrmse']:.3f} | {r['frc_half_nyquist']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
