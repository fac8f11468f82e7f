"""Compare the PINE denoising step with one ePIE sweep on the foundation benchmark case.

The sweep runs on one torch thread (as the runner does for PIE engines); the denoising step
``O <- (1 - rho) O + rho D(O)`` on the 512x512 object runs with the threads given.

    python benchmarks/denoise_cost.py [--reps 5] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from epie_sweep import benchmark_case

import ptyframe
from ptyframe.data.measurements import Measurements
from ptyframe.engines.pie import EpieConfig, PieEngine
from ptyframe.engines.prior import DenoiseStep, DenoiseStepConfig
from ptyframe.initial import InitConfig, initial_state
from ptyframe.registry import BuildContext


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    ds = benchmark_case()
    meas = Measurements.from_dataset(ds)
    state = initial_state(InitConfig(), ds, meas)
    torch.set_num_threads(1)
    eng = PieEngine(EpieConfig(epochs=args.reps + 1))
    eng.prepare(meas, state, seed=0)
    sweeps = [r.seconds for r in eng.iterate()][1:]
    sweep = float(np.median(sweeps))
    reg = ptyframe.registry()
    step = DenoiseStep(
        DenoiseStepConfig(rho=0.49), reg.build("denoiser", "dncnn", BuildContext(reg))
    )
    print(
        f"object {tuple(state.object.shape[-2:])}, ePIE sweep (1 thread, median of "
        f"{args.reps}): {sweep:.3f} s\n"
    )
    print("| denoiser threads | denoising step s (median) | share of one ePIE sweep |")
    print("|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        obj = state.object.clone()
        times = []
        for _ in range(args.reps + 1):
            work = state.clone()
            work.object.copy_(obj)
            t0 = time.perf_counter()
            step.apply(work, 0)
            times.append(time.perf_counter() - t0)
        med = float(np.median(times[1:]))
        print(f"| {threads} | {med:.3f} | {100 * med / sweep:.0f} % |")


if __name__ == "__main__":
    main()
