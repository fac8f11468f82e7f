"""Choose the noise-aware denoiser's threshold on cases that are NOT the benchmark's six.

``denoiser=cpl_auto`` mixes ``(1 - t) cpl_sigma15 + t cpl_blind`` with ``t`` frozen at its
first call from the object's noise level ``sigma_hat`` (``ptyframe/denoise/auto.py``). This
script runs PINE (300 sweeps by default) with ``t`` fixed at 0, 0.5 and 1 and with the old
default (``denoiser=dncnn``, frozen normalisation) on simulated cases that differ from the
study cases of ``benchmarks/pine_denoisers.py`` (lowdose, highdose, overlap_750/625/500/375,
all particle film seed 0) in seed, dose, phantom and raster, records ``sigma_hat`` (the same
in every run of a case: the first call sees the object after the first sweep, before any
denoising) and prints one markdown table. It then scores every step mapping
``t = 1 if sigma_hat > s else 0`` (``s`` between consecutive measured levels): first by the
number of cases where the chosen ``t`` reaches the old default's FRC at 1/2 Nyquist, then by
the mean FRC; the best ``s`` is printed (``AUTO_SIGMA_LOW/HIGH`` in
``ptyframe/denoise/plugin.py`` take it).

    OMP_NUM_THREADS=1 python benchmarks/pine_denoiser_select.py [--epochs 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from pine_denoisers import compose, pick

BASE = "+experiment=lowdose"  # geometry of the low/high-dose cases; everything else overridden
LOW_STEPS, HIGH_STEPS, SPARSE_STEPS = (0.5, 0.1), (0.8, 0.5), (1.0, 0.1)


def cases() -> dict[str, tuple[list[str], tuple[float, float]]]:
    """Return the tuning cases: name -> (overrides, PINE (alpha, beta))."""
    out: dict[str, tuple[list[str], tuple[float, float]]] = {}
    for seed in (1, 2):
        for i0 in (30, 100, 300, 1000, 10000):
            steps = LOW_STEPS if i0 < 1000 else HIGH_STEPS
            out[f"film s{seed} i0={i0:g}"] = (
                [f"data.simulation.seed={seed}", f"data.simulation.i0_origin={i0}"],
                steps,
            )
    for i0 in (100, 10000):
        out[f"natural s3 i0={i0:g}"] = (
            [
                "data.simulation.seed=3",
                f"data.simulation.i0_origin={i0}",
                "data.phantom={name: natural}",
            ],
            LOW_STEPS if i0 < 1000 else HIGH_STEPS,
        )
    for n, overlap, i0, seed in ((8, 0.6, 100, 4), (8, 0.6, 10000, 4), (6, 0.45, 10000, 5)):
        steps = SPARSE_STEPS if i0 >= 1000 else LOW_STEPS
        out[f"film s{seed} {n}x{n} ov{overlap:g} i0={i0:g}"] = (
            [
                f"data.simulation.seed={seed}",
                f"data.simulation.i0_origin={i0}",
                f"data.scan={{name: raster, n_y: {n}, n_x: {n}, overlap: {overlap}, "
                "jitter_px: 1.0}",
            ],
            steps,
        )
    return out


VARIANTS = {
    "old": ["denoiser=dncnn", "denoiser.normalisation=frozen"],
    "t=0": ["denoiser=cpl_auto", "denoiser.t=0.0"],
    "t=0.5": ["denoiser=cpl_auto", "denoiser.t=0.5"],
    "t=1": ["denoiser=cpl_auto", "denoiser.t=1.0"],
}


def run_case(overrides: list[str], steps: tuple[float, float], epochs: int) -> dict[str, Any]:
    """Run every variant on one case; return FRC at 1/2 Nyquist per variant and sigma_hat."""
    from ptyframe.runner import run

    row: dict[str, Any] = {}
    for label, extra in VARIANTS.items():
        cfg, registry = compose(
            [
                BASE,
                *overrides,
                "engine=pine",
                f"engine.alpha={steps[0]}",
                f"engine.beta={steps[1]}",
                f"engine.epochs={epochs}",
                "progress=false",
                *extra,
            ]
        )
        t0 = time.perf_counter()
        cols = run(cfg, registry, out_dir=None, write=False).history.columns
        row[label] = pick(cols, "frc_half_nyquist", epochs)
        row[f"s_{label}"] = time.perf_counter() - t0
        if cols.get("denoise_sigma"):
            row["sigma_hat"] = float(cols["denoise_sigma"][-1])
    return row


def best_threshold(rows: list[dict[str, Any]]) -> tuple[float, int, float]:
    """Return ``(s, cases >= old, mean FRC)`` of the best step ``t = [sigma_hat > s]``."""
    levels = sorted(r["sigma_hat"] for r in rows)
    cands = [levels[0] / 2] + [(a + b) / 2 for a, b in zip(levels[:-1], levels[1:], strict=True)]
    cands.append(levels[-1] * 2)
    best: tuple[float, int, float] | None = None
    for s in cands:
        chosen = [r["t=1"] if r["sigma_hat"] > s else r["t=0"] for r in rows]
        wins = sum(c >= r["old"] for c, r in zip(chosen, rows, strict=True))
        mean = sum(chosen) / len(chosen)
        if best is None or (wins, mean) > (best[1], best[2]):
            best = (s, wins, mean)
    assert best is not None
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--only", nargs="*", default=None, help="run only these case names")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    for name, (overrides, steps) in cases().items():
        if args.only and name not in args.only:
            continue
        row = {"case": name, "alpha": steps[0], "beta": steps[1]}
        row.update(run_case(overrides, steps, args.epochs))
        rows.append(row)
        print(
            f"  {name}: sigma_hat {row['sigma_hat']:.5f} "
            + " ".join(f"{k} {row[k]:.3f}" for k in VARIANTS),
            flush=True,
        )
    print(f"\nPINE FRC at 1/2 Nyquist after {args.epochs} sweeps (tuning cases)\n")
    print("| case | (alpha, beta) | sigma_hat | old DnCNN | t=0 (sigma15) | t=0.5 | t=1 (blind) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: r["sigma_hat"]):
        print(
            f"| {r['case']} | ({r['alpha']:g}, {r['beta']:g}) | {r['sigma_hat']:.5f} "
            + " ".join(f"| {r[k]:.3f}" for k in VARIANTS)
            + " |"
        )
    s, wins, mean = best_threshold(rows)
    print(
        f"\nbest step: t = 1 if sigma_hat > {s:.5f} else 0: >= old default on {wins}/{len(rows)}"
        f" cases, mean FRC {mean:.3f}"
    )
    for fixed in ("t=0", "t=0.5", "t=1"):
        w = sum(r[fixed] >= r["old"] for r in rows)
        m = sum(r[fixed] for r in rows) / len(rows)
        print(f"fixed {fixed}: >= old default on {w}/{len(rows)} cases, mean FRC {m:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "best_step": s}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
