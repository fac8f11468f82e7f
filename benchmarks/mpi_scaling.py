"""Strong scaling of the MPI modes: 1 vs 2 ranks, one torch thread per rank.

Foundation benchmark case (``epie_sweep.benchmark_case``: 625 patterns of 128x128, 512x512
object), ePIE (data-parallel variant, ``center_probe=false`` so that every mode can run it)
and autodiff (Adam, minibatch 32, and 128 to show the per-minibatch cost). Rows:

every mode through ``ptyframe.runner.run`` (what ``ptyframe reconstruct`` does; the object
modes on windows: each rank holds only its rows of the object).

Each rank reads only its shard of the patterns. Every configuration runs ``--repeat`` times
(separate launches); the table gives the best of the per-launch medians of seconds per epoch
(first epoch dropped), the range over launches, and the speed-up of the best over the best
single data-parallel rank. On a shared machine the best launch is the one least disturbed by
other jobs. Run as::

    python benchmarks/mpi_scaling.py [--repeat 3]   # launches mpiexec -n 1 and -n 2 itself
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENGINES = {
    "epie": {"name": "epie", "epochs": 6, "center_probe": False},
    "autodiff": {"name": "autodiff", "epochs": 4},
    "autodiff_mb128": {"name": "autodiff", "epochs": 4, "minibatch": 128},
}
RUNS = (
    ("mpi_data_parallel", 1),
    ("mpi_data_parallel", 2),
    ("mpi_distributed_object", 2),
    ("hdf5_object", 2),
)


def worker(engine: str, mode: str) -> None:
    """Time the epochs on this rank's shard; the root prints the median."""
    import numpy as np
    import torch

    import ptyframe
    from ptyframe.runner import run

    from _lib.cases import benchmark_case

    torch.set_num_threads(1)
    ds = benchmark_case()
    cfg = {
        "engine": ENGINES[engine],
        "distribution": {"name": mode},
        "progress": False,
        "metrics": {"names": []},
    }
    res = run(cfg, ptyframe.registry(), dataset=ds, write=False)
    secs = res.history.columns["seconds"][1:]
    err = res.history.columns["data_error"][-1]
    if int(os.environ.get("PMI_RANK", "0")) == 0:
        print(f"RESULT {float(np.median(secs)):.4f} {err:.4g}")


def launch(engine: str, mode: str, ranks: int, env: dict[str, str]) -> tuple[float, str]:
    """Run one configuration in ``mpiexec``; return (median s / epoch, final data error)."""
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or "mpiexec"
    cmd = [
        "timeout", "600", mpiexec, "-n", str(ranks), sys.executable, __file__,
        "--worker", engine, mode,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
    if out.returncode != 0 or not line:
        print(out.stderr[-2000:])
        raise SystemExit(f"{engine} / {mode} on {ranks} ranks failed")
    return float(line[0].split()[1]), line[0].split()[2]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
        return
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 3
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    print(f"best of {repeat} launches each")
    print("| engine | mode | ranks | s / epoch (best) | range | speed-up | final data error |")
    print("|---|---|---|---|---|---|---|")
    for engine in ENGINES:
        base = None
        for mode, ranks in RUNS:
            runs = [launch(engine, mode, ranks, env) for _ in range(repeat)]
            secs = [s for s, _ in runs]
            best = min(secs)
            base = base or best
            print(
                f"| {engine} | {mode} | {ranks} | {best:.3f} | {min(secs):.3f}-{max(secs):.3f} "
                f"| {base / best:.2f}x | {runs[0][1]} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
