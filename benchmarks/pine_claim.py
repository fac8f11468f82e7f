"""PINE vs ePIE at matched settings on the lowdose case, scored by the current metric.

The case of ``+experiment=lowdose`` (i0_origin = 1e2, 100 patterns of 64x64, Poisson noise)
for several dataset seeds; ePIE and PINE (shipped DnCNN, rho = 0.49) both at
(alpha, beta) = (0.1, 0.1), default initial guess, reconstruction seed 0; FRC band values at
1/4, 1/2, 3/4 Nyquist from ``frc_against_truth``. tests/engines/test_pine_claim.py asserts seed 0.

    python benchmarks/pine_claim.py [--epochs 150] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import time

from ptyframe.data.dataset import PtychoDataset
from ptyframe.metrics.frc import frc_against_truth
from ptyframe.runner import reconstruct
from ptyframe.simulation.simulate import simulate_dataset

SCAN = {"name": "raster", "n_y": 10, "n_x": 10, "overlap": 0.7, "jitter_px": 1.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    print("| seed | engine | sweeps | FRC 1/4 | FRC 1/2 | FRC 3/4 | s |")
    print("|---|---|---|---|---|---|---|")
    for seed in (int(s) for s in args.seeds.split(",")):
        sim = simulate_dataset(
            "particles", "focused", SCAN, window_px=64, pixel_size_m=20e-9, i0_origin=1e2,
            noise="poisson", seed=seed,
        )  # fmt: skip
        ds = PtychoDataset(sim.geometry, patterns=sim.patterns, truth=sim.truth)
        for engine in ("epie", "pine"):
            t0 = time.perf_counter()
            r = reconstruct(ds, engine, epochs=args.epochs, alpha=0.1, beta=0.1)
            res, _ = frc_against_truth(
                r.object[0], sim.truth.object[0], sim.truth.illumination, 20e-9
            )
            bands = " | ".join(f"{res.band(f):.3f}" for f in (0.25, 0.5, 0.75))
            dt = time.perf_counter() - t0
            print(f"| {seed} | {engine} | {args.epochs} | {bands} | {dt:.0f} |", flush=True)


if __name__ == "__main__":
    main()
