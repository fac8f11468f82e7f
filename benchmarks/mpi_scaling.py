"""Strong scaling of the data-parallel MPI mode: 1 vs 2 ranks, one torch thread each.

Foundation benchmark case (625 patterns of 128x128, 512x512 object). Run as::

    python benchmarks/mpi_scaling.py            # launches mpiexec -n 1 and -n 2 itself

Prints seconds per epoch (median) for the ePIE data-parallel variant and the autodiff engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(engine: str, epochs: int) -> None:
    """Time ``epochs`` epochs on this rank's shard; rank 0 prints the median."""
    import numpy as np
    import torch
    from epie_sweep import benchmark_case

    import ptyframe
    from ptyframe.config import ReconstructConfig
    from ptyframe.runner import run

    torch.set_num_threads(1)
    ds = benchmark_case()
    reg = ptyframe.registry()
    eng = reg.config("engine", {"name": engine, "epochs": epochs})
    cfg = ReconstructConfig(engine=eng, distribution=reg.config("distribution",
                                                               "mpi_data_parallel"),
                            progress=False)
    res = run(cfg, reg, dataset=ds, write=False)
    secs = res.history.columns["seconds"][1:]
    if int(os.environ.get("PMI_RANK", "0")) == 0:
        print(f"RESULT {float(np.median(secs)):.4f}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]))
        return
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or "mpiexec"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    print("| engine | ranks | s / epoch (median) | speed-up |")
    print("|---|---|---|---|")
    for engine, epochs in (("epie", 6), ("autodiff", 4)):
        base = None
        for ranks in (1, 2):
            out = subprocess.run(
                ["timeout", "600", mpiexec, "-n", str(ranks), sys.executable, __file__,
                 "--worker", engine, str(epochs)],
                capture_output=True, text=True, env=env,
            )
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
            if not line:
                print(out.stderr[-2000:])
                raise SystemExit(f"{engine} on {ranks} ranks failed")
            secs = float(line[0].split()[1])
            base = base or secs
            print(f"| {engine} | {ranks} | {secs:.3f} | {base / secs:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
