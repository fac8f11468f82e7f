"""Choose the noise-aware denoiser's threshold on cases that are NOT the benchmark's six.

``denoiser=cpl_auto`` mixes ``(1 - t) cpl_sigma15 + t cpl_blind`` with ``t`` frozen at its
first call from the object's noise level ``sigma_hat`` (``ptyframe/denoise/auto.py``). This
script runs PINE (``--epochs`` sweeps) with ``t`` fixed at 0 and 1 (and 0.5 with ``--mid``)
and with the old default (``denoiser=dncnn``, frozen normalisation) on simulated cases that
differ from the study cases of ``benchmarks/pine_denoisers.py`` (lowdose, highdose,
overlap_750/625/500/375, all particle film seed 0) in seed, dose, phantom and raster. It
records ``sigma_hat`` (the same in every run of a case: the first call sees the object after
the first sweep, before any denoising) and the dose (photons per object pixel,
``ptyframe/denoise/dose.py``) and prints one markdown table. It then scores every step
mapping ``t = 1 if dose < s else 0`` and ``t = 1 if sigma_hat > s else 0`` (``s`` between
consecutive measured values): first by the number of cases where the chosen ``t`` reaches the
old default's FRC at 1/2 Nyquist, then by the mean FRC; the best ``s`` are printed
(``AUTO_DOSE_*`` and ``AUTO_SIGMA_*`` in ``ptyframe/denoise/plugin.py`` take them).

    OMP_NUM_THREADS=1 python benchmarks/pine_denoiser_select.py --epochs 150 [--mid] [--json F]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

from _lib.runs import compose, pick

BASE = "+experiment=lowdose"  # geometry of the low/high-dose cases; everything else overridden
LOW_STEPS, HIGH_STEPS, SPARSE_STEPS = (0.5, 0.1), (0.8, 0.5), (1.0, 0.1)


def cases() -> dict[str, tuple[list[str], tuple[float, float]]]:
    """Return the tuning cases: name -> (overrides, PINE (alpha, beta))."""
    out: dict[str, tuple[list[str], tuple[float, float]]] = {}
    for seed, doses in ((1, (30, 100, 300, 1000, 10000)), (2, (100, 3000))):
        for i0 in doses:
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
    for n, overlap, i0, seed in ((8, 0.6, 10000, 4), (6, 0.45, 10000, 5)):
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
    "t=1": ["denoiser=cpl_auto", "denoiser.t=1.0"],
}
# the intermediate weight costs two nets per call: only with --mid
MID = {"t=0.5": ["denoiser=cpl_auto", "denoiser.t=0.5"]}


def run_case(
    overrides: list[str], steps: tuple[float, float], epochs: int, variants: dict[str, list[str]]
) -> dict[str, Any]:
    """Run every variant on one case; return FRC at 1/2 Nyquist per variant and sigma_hat."""
    from ptyframe.runner import run

    row: dict[str, Any] = {}
    for label, extra in variants.items():
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
        for key, col in (("sigma_hat", "denoise_sigma"), ("dose", "denoise_dose")):
            if cols.get(col):
                row[key] = float(cols[col][-1])
    return row


def best_threshold(rows: list[dict[str, Any]], key: str) -> tuple[float, int, float]:
    """Return ``(s, cases >= old, mean FRC)`` of the best step on ``key``.

    ``key = "sigma_hat"``: ``t = [sigma_hat > s]`` (arithmetic midpoints); ``key = "dose"``:
    ``t = [dose < s]`` (geometric midpoints: the dose spans decades).
    """
    levels = sorted(r[key] for r in rows)
    pairs = zip(levels[:-1], levels[1:], strict=True)
    if key == "dose":
        cands = [levels[0] / 2, *(math.sqrt(a * b) for a, b in pairs), levels[-1] * 2]
    else:
        cands = [levels[0] / 2, *((a + b) / 2 for a, b in pairs), levels[-1] * 2]
    best: tuple[float, int, float] | None = None
    for s in cands:
        blind = [(r[key] > s) if key != "dose" else (r[key] < s) for r in rows]
        chosen = [r["t=1"] if b else r["t=0"] for b, r in zip(blind, rows, strict=True)]
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
    ap.add_argument("--mid", action="store_true", help="also t = 0.5 (two nets per call)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    variants = {**VARIANTS, **(MID if args.mid else {})}
    rows = []
    for name, (overrides, steps) in cases().items():
        if args.only and name not in args.only:
            continue
        row = {"case": name, "alpha": steps[0], "beta": steps[1]}
        row.update(run_case(overrides, steps, args.epochs, variants))
        rows.append(row)
        print(
            f"  {name}: dose {row['dose']:.0f} sigma_hat {row['sigma_hat']:.5f} "
            + " ".join(f"{k} {row[k]:.3f}" for k in variants),
            flush=True,
        )
    print(f"\nPINE FRC at 1/2 Nyquist after {args.epochs} sweeps (tuning cases)\n")
    print("| case | (alpha, beta) | dose /px | sigma_hat | " + " | ".join(variants) + " |")
    print("|---|---|---:|---:|" + "---:|" * len(variants))
    for r in sorted(rows, key=lambda r: r["dose"]):
        print(
            f"| {r['case']} | ({r['alpha']:g}, {r['beta']:g}) | {r['dose']:.0f} "
            f"| {r['sigma_hat']:.5f} " + " ".join(f"| {r[k]:.3f}" for k in variants) + " |"
        )
    best = {}
    for key, rule in (("dose", "dose <"), ("sigma_hat", "sigma_hat >")):
        s, wins, mean = best_threshold(rows, key)
        best[key] = s
        print(
            f"\nbest step: t = 1 if {rule} {s:.5g} else 0: >= old default on {wins}/{len(rows)}"
            f" cases, mean FRC {mean:.3f}"
        )
    for fixed in (k for k in variants if k != "old"):
        w = sum(r[fixed] >= r["old"] for r in rows)
        m = sum(r[fixed] for r in rows) / len(rows)
        print(f"fixed {fixed}: >= old default on {w}/{len(rows)} cases, mean FRC {m:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "best_step": best}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
