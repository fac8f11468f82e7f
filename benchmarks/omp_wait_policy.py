"""OpenMP wait policy: ``engine_threads.py`` with and without ``OMP_WAIT_POLICY=PASSIVE``.

The policy is read once, when torch (libgomp) loads, so each measurement is its own process:
for each load level (``--spinners``: that many busy-loop processes started beside it and
killed afterwards) the settings of ``--policies`` (``unset``: neither variable set, or a
``NAME=VALUE`` of ``OMP_WAIT_POLICY`` or libgomp's ``GOMP_SPINCOUNT``) alternate
``--rounds`` times, each a run of ``engine_threads.py --sweeps S`` limited to ``--timeout``
seconds (a run past it is reported as ``> timeout``). Prints one markdown table row per
engine and run: load, setting and the 1- and 2-thread seconds per sweep.

    python benchmarks/omp_wait_policy.py [--spinners 0 3] [--rounds 2] [--sweeps 3] \
        [--policies unset OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=10000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPIN = "while 1: pass"


POLICY_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def one_run(policy: str, sweeps: int, engines: list[str], timeout_s: float) -> list[str]:
    """Run engine_threads.py under ``policy``; return its table rows (or a timeout row)."""
    env = {k: v for k, v in os.environ.items() if k not in POLICY_VARS}
    if policy != "unset":
        name, value = policy.split("=", 1)
        env[name] = value
    cmd = [sys.executable, "engine_threads.py", "--sweeps", str(sweeps), "--engines", *engines]
    try:
        out = subprocess.run(
            cmd, cwd=HERE, env=env, capture_output=True, text=True, timeout=timeout_s, check=True
        ).stdout
    except subprocess.TimeoutExpired:
        return [f"| (all) | > {timeout_s:.0f} s for the run | | |"]
    return [line for line in out.splitlines() if line.startswith("| ") and "engine" not in line]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spinners", type=int, nargs="+", default=[0, 3])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sweeps", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--engines", nargs="+", default=["minibatch_pie", "lsqml"])
    ap.add_argument("--policies", nargs="+", default=["unset", "OMP_WAIT_POLICY=PASSIVE"])
    args = ap.parse_args()
    print(
        "| spinners | load average (start) | setting | engine | s / sweep, 1 thread "
        "| s / sweep, 2 threads | ratio 2/1 |"
    )
    print("|---|---|---|---|---|---|---|")
    for n_spin in args.spinners:
        spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(n_spin)]
        try:
            if n_spin:
                time.sleep(20)  # let the load average rise
            for _ in range(args.rounds):
                for policy in args.policies:
                    load = os.getloadavg()[0]
                    for row in one_run(policy, args.sweeps, args.engines, args.timeout):
                        print(f"| {n_spin} | {load:.1f} | {policy} {row}", flush=True)
        finally:
            for p in spinners:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
