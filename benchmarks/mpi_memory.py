"""Per-rank peak memory of the object share: data-parallel vs distributed object vs HDF5.

A 4096 x 4096 object (complex64, 128 MiB), a 128 x 128 probe on a 33 x 33 raster (step 124
px, 1089 patterns). Every rank reads only its shard of the patterns; the "object share" is the
rank's peak resident memory during the epochs *above* what it held once its patterns were
loaded: the object (whole or window) and everything the engine and the distribution keep for
it (ePIE: the slab and exchange buffers; autodiff: parameters, gradients, Adam moments too).
The peak is reset (``/proc/self/clear_refs``) once the engine is prepared, so transients of
the set-up (the whole starting object, the engine's float64 sum over the patterns) are not
counted; the root's final gather of the whole object is not counted either. Every run goes
through ``ptyframe.runner.run`` (what ``ptyframe reconstruct`` does; its callbacks mark those
points), without truth metrics and checkpoints, which would gather the whole object on the
root. Run as::

    python benchmarks/mpi_memory.py             # launches mpiexec -n 1 and -n 2 itself
    python benchmarks/mpi_memory.py 1 2 4       # other rank counts (memory, not speed)

Linux only (reads ``/proc/self/status``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

N_OBJ, M, STEP = 4096, 128, 124
MODES = ("mpi_data_parallel", "mpi_distributed_object", "hdf5_object")
ENGINES = {
    "epie": {"name": "epie", "epochs": 1, "alpha": 0.5, "center_probe": False},
    "autodiff": {"name": "autodiff", "epochs": 1, "minibatch": 256},
}


def _status(key: str) -> int:
    """Return a ``/proc/self/status`` field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def make_data(path: Path) -> None:
    """Write the benchmark data file (noiseless far-field patterns, centred)."""
    import h5py
    import numpy as np
    import torch

    from ptyframe.physics.farfield import FarFieldPtychography
    from ptyframe.physics.fft import to_centred

    g = np.arange(0, N_OBJ - M + 1, STEP, dtype=np.float64)
    pos = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    yy, xx = np.mgrid[:N_OBJ, :N_OBJ].astype(np.float32)
    phase = 0.5 * np.sin(yy / 37.0) * np.cos(xx / 53.0)
    obj = torch.from_numpy(np.exp(1j * phase).astype(np.complex64))[None]
    del yy, xx, phase
    y, x = np.mgrid[:M, :M] - M / 2
    r = np.hypot(y, x) / 32.0
    probe = torch.from_numpy((np.clip(1.5 - r, 0, 1) * np.exp(1.5j * r**2))[None] * 100.0)
    model = FarFieldPtychography()
    with h5py.File(path, "w") as f:
        data = f.create_dataset("exchange/data", (1, len(pos), M, M), dtype=np.float32)
        for s in range(0, len(pos), 128):
            p = torch.from_numpy(pos[s : s + 128])
            inten = model.intensities(obj, probe.to(torch.complex64), p)
            data[0, s : s + len(p)] = to_centred(inten).float().numpy()
        f["metadata/probe_pos_px"] = pos
        f["metadata/energy_ev"] = 8000.0
        f["metadata/psize_cm"] = 2e-6


def worker(data: str, engine: str, mode: str) -> None:
    """Run one epoch; print this rank's numbers (one line per rank, gathered on the root)."""
    import torch

    from ptyframe.runner import run

    torch.set_num_threads(1)
    marks: dict[str, Any] = {}

    from ptyframe.callbacks.base import Callback

    class Marks(Callback):
        """Memory marks: data loaded, engine prepared (peak reset), after the last epoch."""

        order = 0  # before the outputs' final gather

        def setup(self, run: Any) -> None:
            marks["base"] = _status("VmRSS")

        def on_prepared(self, run: Any) -> None:
            Path("/proc/self/clear_refs").write_text("5")  # reset the peak: from here on
            obj, dist = run.state.object, run.distribution
            marks["object_bytes"] = obj.numel() * obj.element_size()
            layout = dist.layout()
            marks["rows"] = layout[dist.rank] if layout else (0, int(obj.shape[-2]))

        def on_run_end(self, run: Any, status: str) -> None:
            marks["peak"] = _status("VmHWM")
            marks["dist"] = run.distribution

    cfg = {
        "data": {"name": "file", "path": data},
        "engine": ENGINES[engine],
        "distribution": {"name": mode},
        "metrics": {"names": []},
        "progress": False,
    }
    res = run(cfg, write=False, callbacks=[Marks()])
    peak = marks["peak"] - marks["base"]
    dist = marks["dist"]
    rows = dist.allgather_object((marks["rows"], peak, marks["object_bytes"]))
    err = res.history.columns["data_error"][-1]
    if dist.is_root:
        for r, (win, pk, ob) in enumerate(rows):
            print(f"RESULT {r} {win[0]} {win[1]} {pk} {ob} {err:.4g}", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:5])
        return
    counts = [int(a) for a in sys.argv[1:]] or [1, 2]
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or "mpiexec"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    tmp = Path(tempfile.mkdtemp(prefix="ptyframe-mpi-memory-"))
    try:
        data = tmp / "big.h5"
        make_data(data)
        mib = 2**20
        print(f"object {N_OBJ}x{N_OBJ} complex64 = {N_OBJ * N_OBJ * 8 / mib:.0f} MiB")
        print(
            "| engine | mode | ranks | object rows held | object tensor (MiB) "
            "| object share, peak (MiB) |"
        )
        print("|---|---|---|---|---|---|")
        for engine in ENGINES:
            for mode in MODES:
                for ranks in counts:
                    cmd = [
                        "timeout", "600", mpiexec, "-n", str(ranks), sys.executable, __file__,
                        "--worker", str(data), engine, mode,
                    ]  # fmt: skip
                    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                    lines = [ln.split() for ln in out.stdout.splitlines() if ln.startswith("RES")]
                    if out.returncode != 0 or not lines:
                        print(out.stderr[-3000:])
                        raise SystemExit(f"{engine}/{mode} on {ranks} ranks failed")
                    rows = ", ".join(f"{int(b) - int(a)}" for _, _, a, b, *_ in lines)
                    objs = ", ".join(f"{int(o) / mib:.0f}" for *_, o, _ in lines)
                    peaks = ", ".join(f"{int(p) / mib:.0f}" for *_, p, _, _ in lines)
                    line = f"| {engine} | {mode} | {ranks} | {rows} | {objs} | {peaks} |"
                    print(line, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
