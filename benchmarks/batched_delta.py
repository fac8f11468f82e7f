"""The minibatch engines' detector step: fused numba pass against torch's ``detector_delta``.

Part 1: milliseconds per call of ``ptyframe.engines.minibatch_delta.batched_delta`` and of
``ptyframe.physics.projection.detector_delta`` on ``[B, 1, 128, 128]`` complex64 waves, at
one and two torch threads (best of 7 interleaved rounds of 10 calls). Part 2: seconds per
sweep of minibatch PIE and LSQML on ``epie_sweep.benchmark_case`` at one thread with the
fused step (``engine.backend=numba``) and with the torch step (``backend=torch``), sweeps
alternating.

    python benchmarks/batched_delta.py [--batches 16 32 128] [--sweeps 5]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from ptyframe.data.measurements import Measurements
from ptyframe.engines import minibatch_delta
from ptyframe.physics.projection import detector_delta
from ptyframe.plugins import default_registry

from _lib.cases import benchmark_case
from _lib.engines import prepared_engine


def calls(batches: list[int]) -> None:
    """Print part 1's table."""
    g = torch.Generator().manual_seed(0)
    best: dict[tuple[int, str, int], float] = {}
    cases = {}
    for b in batches:
        w = torch.randn(b, 1, 128, 128, dtype=torch.complex64, generator=g)
        cases[b] = (w, torch.rand(b, 128, 128, generator=g))
    for _ in range(7):
        for b, (w, a) in cases.items():
            for name, fn in (("fused", minibatch_delta.batched_delta), ("torch", detector_delta)):
                for threads in (1, 2):
                    torch.set_num_threads(threads)
                    waves = [w.clone() for _ in range(10)]
                    t0 = time.perf_counter()
                    for x in waves:
                        fn(x, a)
                    t = (time.perf_counter() - t0) / 10 * 1e3
                    key = (b, name, threads)
                    best[key] = min(best.get(key, t), t)
    print("| B | fused, 1 thread (ms) | fused, 2 | torch, 1 | torch, 2 |")
    print("|---|---|---|---|---|")
    for b in batches:
        row = [f"{best[(b, n, t)]:.3f}" for n in ("fused", "torch") for t in (1, 2)]
        print(f"| {b} | " + " | ".join(row) + " |")


def sweeps(n_sweeps: int) -> None:
    """Print part 2's table."""
    torch.set_num_threads(1)
    registry = default_registry()
    ds = benchmark_case()
    meas = Measurements.from_dataset(ds)
    runs = []
    for name in ("minibatch_pie", "lsqml"):
        for fused in (True, False):
            backend = "numba" if fused else "torch"
            engine, _ = prepared_engine(registry, name, ds, meas, backend=backend)
            engine.step(0)
            runs.append((name, fused, engine, []))
    for epoch in range(1, n_sweeps + 1):
        for _, _, engine, seconds in runs:
            seconds.append(engine.step(epoch).seconds)
    print("\n| engine (1 thread) | s / sweep, fused step | s / sweep, torch step | ratio |")
    print("|---|---|---|---|")
    for i in range(0, len(runs), 2):
        (name, _, _, s1), (_, _, _, s2) = runs[i], runs[i + 1]
        print(f"| {name} | {min(s1):.3f} | {min(s2):.3f} | {min(s1) / min(s2):.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32, 128])
    ap.add_argument("--sweeps", type=int, default=5)
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    calls(args.batches)
    sweeps(args.sweeps)
    print(
        f"\nload average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}"
    )


if __name__ == "__main__":
    main()
