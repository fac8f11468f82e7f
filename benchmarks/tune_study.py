"""Tune ePIE (or PINE) without ground truth: the full 10x10 grid against Optuna.

On the simulated low-dose case (``+experiment=lowdose``, 100 patterns of 64x64), both
searches hold out the same 5 % of the patterns (``data.validation_fraction=0.05``, seed 0)
and score each run by its final validation error (``ptyframe.metrics.validation``):

* grid: the PINE paper's 10x10 (alpha, beta) grid (``+sweep=alpha_beta``; PINE: alpha x rho);
* Optuna: ``+sweep=tune_epie`` (or ``tune_pine``), TPE, ``--trials`` trials (<= 20).

It prints the truth FRC at 1/2 Nyquist of the grid's best run, of the grid point the
validation error picks, and of Optuna's choice (its lowest validation error), the ratio of
Optuna's to the grid's best, and the Spearman rank correlation of validation error against
truth FRC over the grid (negative: a lower validation error ranks a better object)::

    OMP_NUM_THREADS=1 python benchmarks/tune_study.py --epochs 100 --out .tune-study
    python benchmarks/tune_study.py --out .tune-study --table-only   # re-read finished runs

Finished runs are skipped on a rerun (``output.skip_done``), so an interrupted study
continues where it stopped.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GRID = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0"
RHO_GRID = "0.0,0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.45"


def _ptyframe(args: list[str]) -> float:
    """Run ``ptyframe ARGS`` in a child process; return its wall time in seconds."""
    t0 = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "ptyframe.cli", *args], check=True, env=env)
    return time.perf_counter() - t0


def _common(engine: str, epochs: int) -> list[str]:
    return [
        "+experiment=lowdose",
        f"engine={engine}",
        f"engine.epochs={epochs}",
        "data.validation_fraction=0.05",
        "metrics.every=0",
        "output.images=false",
        "progress=false",
    ]


def run_grid(engine: str, epochs: int, out: Path) -> float:
    second = "engine.rho" if engine == "pine" else "engine.beta"
    args = ["reconstruct", "-m", *_common(engine, epochs), f"engine.alpha={GRID}"]
    args += [f"{second}={RHO_GRID if engine == 'pine' else GRID}", "output.skip_done=true"]
    return _ptyframe([*args, f"hydra.sweep.dir={out / 'grid'}"])


def run_optuna(engine: str, epochs: int, trials: int, out: Path) -> float:
    preset = "tune_pine" if engine == "pine" else "tune_epie"
    args = ["reconstruct", "-m", *_common(engine, epochs), f"+sweep={preset}"]
    args += [f"hydra.sweeper.n_trials={trials}", f"hydra.sweep.dir={out / 'optuna'}"]
    if engine == "pine":  # tune the same two parameters as the grid
        args += ["engine.beta=0.1"]
    return _ptyframe(args)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Return Spearman's rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def _rows(path: Path) -> list[dict]:
    from ptyframe.report.gather import load_runs

    return [r.row for r in load_runs(path, recompute_frc=False)]


def table(out: Path, engine: str) -> None:
    grid = [r for r in _rows(out / "grid") if r["status"] == "finished"]
    opt = [r for r in _rows(out / "optuna") if math.isfinite(r.get("validation_error", math.nan))]
    second = "rho" if engine == "pine" else "beta"
    ve = np.array([r["validation_error"] for r in grid])
    frc = np.array([r["frc_half_nyquist"] for r in grid])
    best = grid[int(np.nanargmax(frc))]
    picked = grid[int(np.nanargmin(ve))]
    chosen = min(opt, key=lambda r: r["validation_error"])
    ratio = chosen["frc_half_nyquist"] / best["frc_half_nyquist"]
    print(f"\n{engine}, low dose: {len(grid)} grid runs, {len(opt)} Optuna trials")
    print(f"| search | runs | alpha | {second} | validation error | truth FRC 1/2 Nyq. |")
    print("|---|---|---|---|---|---|")
    for name, n, r in (
        ("grid, best truth FRC (oracle)", len(grid), best),
        ("grid, lowest validation error", len(grid), picked),
        ("Optuna (TPE), lowest validation error", len(opt), chosen),
    ):
        print(
            f"| {name} | {n} | {r['alpha']:.3f} | {r[second]:.3f} | "
            f"{r['validation_error']:.5f} | {r['frc_half_nyquist']:.4f} |"
        )
    print(f"\nOptuna's choice / grid best truth FRC: {100 * ratio:.1f} %")
    ok = np.isfinite(ve) & np.isfinite(frc)
    print(
        f"Spearman(validation error, truth FRC) over the grid: "
        f"{spearman(ve[ok], frc[ok]):+.3f} ({int(ok.sum())} runs)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engine", choices=["epie", "pine"], default="epie")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path(".tune-study"))
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    out = args.out / args.engine
    if not args.table_only:
        t_grid = run_grid(args.engine, args.epochs, out)
        t_opt = run_optuna(args.engine, args.epochs, args.trials, out)
        print(f"wall time: grid {t_grid:.0f} s, Optuna {t_opt:.0f} s")
    table(out, args.engine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
