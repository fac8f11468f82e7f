"""Do the batched engines use both cores? Seconds per sweep at two torch threads against one.

Case: ``epie_sweep.benchmark_case`` (625 patterns of 128x128, integer positions). For each
engine two copies are prepared, one run at ``torch.set_num_threads(1)`` and one at ``2``
(``--threads``), and their sweeps alternate (interleaved rounds), so the ratio is measured
under the same load. Prints a markdown table: s / sweep at each thread count and the ratio
(below 1: the second thread helps; 0.5 would be perfect use of two cores).

    python benchmarks/engine_threads.py [--sweeps 5] [--engines minibatch_pie lsqml mpie]
    OMP_WAIT_POLICY=PASSIVE python benchmarks/engine_threads.py   # idle OpenMP threads sleep

A last row, ``matmul (ceiling)``, times a 1500x1500 float32 matrix product (MKL, splits
perfectly over threads) in the same rounds: its ratio is what a second core gave at that
moment, so an engine's ratio is read against it (at a load average of 2 or more on two cores
it is ~1: no engine can gain then).

The header prints ``OMP_WAIT_POLICY``: with the default (active) policy torch's idle OpenMP
threads spin after each parallel region, which on a machine with no free core takes the core
from whatever runs next (the other thread, other processes).
"""

from __future__ import annotations

import argparse
import os
import time
from types import SimpleNamespace

import torch

from ptyframe.data.measurements import Measurements
from ptyframe.plugins import default_registry

from _lib.cases import benchmark_case
from _lib.engines import prepared_engine


class Matmul:
    """A perfectly parallel reference load: ``step`` times 3 products of ``mat`` with itself."""

    def __init__(self, mat: torch.Tensor) -> None:
        self.mat = mat

    def step(self, epoch: int) -> SimpleNamespace:  # engine-like signature
        t0 = time.perf_counter()
        for _ in range(3):
            self.mat @ self.mat
        return SimpleNamespace(seconds=time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sweeps", type=int, default=5)
    ap.add_argument("--engines", nargs="+", default=["minibatch_pie", "lsqml", "mpie"])
    ap.add_argument("--threads", type=int, nargs=2, default=[1, 2])
    args = ap.parse_args()
    registry = default_registry()
    ds = benchmark_case()
    meas = Measurements.from_dataset(ds)
    runs = []
    for name in args.engines:
        for threads in args.threads:
            engine, _ = prepared_engine(registry, name, ds, meas)
            torch.set_num_threads(threads)
            engine.step(0)  # warm-up
            runs.append((name, threads, engine, []))
    mat = torch.randn(1500, 1500)
    for threads in args.threads:
        runs.append(("matmul (ceiling)", threads, Matmul(mat), []))
    load0 = os.getloadavg()[0]
    for epoch in range(1, args.sweeps + 1):
        for _, threads, engine, seconds in runs:
            torch.set_num_threads(threads)
            seconds.append(engine.step(epoch).seconds)
    t1, t2 = args.threads
    print(
        f"fastest of {args.sweeps} interleaved sweeps; load average {load0:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end (2-core machine); "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}\n"
    )
    print(f"| engine | s / sweep, {t1} thread(s) | s / sweep, {t2} threads | ratio {t2}/{t1} |")
    print("|---|---|---|---|")
    for i in range(0, len(runs), 2):
        (name, _, _, s1), (_, _, _, s2) = runs[i], runs[i + 1]
        print(f"| {name} | {min(s1):.3f} | {min(s2):.3f} | {min(s2) / min(s1):.2f} |")


if __name__ == "__main__":
    main()
