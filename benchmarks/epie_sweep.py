"""Time one ePIE sweep on the foundation benchmark case and the share spent in FFTs.

Case: 625 patterns of 128x128 (25x25 raster, step 16 px), 512x512 object (513 with sub-pixel
jitter),
focused probe of ~64 px diameter, noiseless. Prints a markdown table.

    python benchmarks/epie_sweep.py [--sweeps 5] [--threads 1 2]
        [--ptylab-python .venv-ptylab/bin/python]

With ``--ptylab-python`` (PtyLab 0.3.7's venv, ``make peers``) each case is also written as a
data-exchange file and PtyLab's ePIE runs on it for the same number of sweeps, one thread,
right after ptyframe's rows of that case (``benchmarks/peers/run_ptylab.py``; PtyLab rounds
sub-pixel positions to whole pixels, so its sub-pixel row runs the integer path); the table
then gives ptyframe's fused sweep as a ratio to PtyLab's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.exchange import write_dataset
from ptyframe.data.geometry import ScanGeometry, object_frame
from ptyframe.data.measurements import Measurements
from ptyframe.engines.pie import EpieConfig, PieEngine, RpieConfig
from ptyframe.initial import InitConfig, initial_state
from ptyframe.physics.farfield import FarFieldPtychography
from ptyframe.physics.fft import to_centred


def benchmark_case(
    m: int = 128, n: int = 25, step: float = 16.0, seed: int = 0, jitter_px: float = 0.0
) -> PtychoDataset:
    """Return the in-memory benchmark dataset (noiseless)."""
    rng = np.random.default_rng(seed)
    g = np.arange(n) * step
    pos = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    pos = pos + rng.uniform(0, jitter_px, pos.shape)
    shape = object_frame(pos, (m, m))
    f = np.fft.fftfreq(shape[0])[:, None] ** 2 + np.fft.fftfreq(shape[1])[None, :] ** 2
    field = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * np.exp(-f / 0.002)))
    field /= np.abs(field).max()
    obj = (0.9 + 0.1 * field) * np.exp(0.5j * field)
    y, x = np.mgrid[:m, :m] - m / 2
    r = np.hypot(y, x) / 32.0
    probe = (np.clip(1.5 - r, 0, 1) * np.exp(1.5j * r**2))[None] * 100.0
    model = FarFieldPtychography()
    inten = []
    for s in range(0, len(pos), 125):
        inten.append(
            model.intensities(
                torch.from_numpy(obj[None]),
                torch.from_numpy(probe),
                torch.from_numpy(pos[s : s + 125]),
            ).float()
        )
    pats = to_centred(torch.cat(inten)).numpy()[None]
    return PtychoDataset(ScanGeometry(pos, (m, m), shape, 8000.0, 20e-9), patterns=pats)


def fft_seconds(n: int, m: int, reps: int = 3) -> float:
    """Return seconds for ``n`` forward + ``n`` inverse 128x128 FFTs one at a time."""
    a = torch.randn(1, m, m, dtype=torch.complex64)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(n):
            b = torch.fft.fft2(a, norm="ortho")
            torch.fft.ifft2(b, norm="ortho")
        best = min(best, time.perf_counter() - t0)
    return best


def sweep_seconds(
    ds: PtychoDataset, meas: Measurements, name: str, sweeps: int, fused: bool
) -> tuple[float, float]:
    """Return (fastest sweep s, fastest FFT floor s), the floor timed between the sweeps."""
    cfg = EpieConfig(epochs=sweeps) if name == "epie" else RpieConfig(epochs=sweeps)
    state = initial_state(InitConfig(), ds, meas)
    eng = PieEngine(cfg)
    eng.fused = fused
    eng.prepare(meas, state, seed=0)
    eng.step(0)  # warm-up (numba compile / cache load)
    sweep, floor = [], []
    for epoch in range(1, sweeps + 1):
        floor.append(fft_seconds(meas.n, meas.window[0], reps=1))
        sweep.append(eng.step(epoch).seconds)
    return min(sweep), min(floor)


def ptylab_seconds(python: str, ds: PtychoDataset, sweeps: int) -> float:
    """Return PtyLab's fastest ePIE sweep on ``ds`` (one thread, its own venv)."""
    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "case.h5", Path(tmp) / "out.npz"
        write_dataset(path, ds.intensities()[None], ds.geometry)
        cmd = [python, str(here / "peers" / "run_ptylab.py"), str(path), str(out)]
        cmd += ["--engine", "ePIE", "--sweeps", str(sweeps + 1), "--threads", "1"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        return float(np.load(out)["seconds_per_sweep"][1:].min())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sweeps", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument(
        "--jitter",
        type=float,
        nargs="+",
        default=[0.0, 0.5],
        help="uniform position jitter in px (0: integer positions)",
    )
    ap.add_argument("--rules", nargs="+", default=["epie", "rpie"])
    ap.add_argument("--ptylab-python", default=None, help="PtyLab's python: time its ePIE too")
    args = ap.parse_args()
    print(
        f"fastest of {args.sweeps} sweeps per row (after one warm-up sweep); FFT floor = one "
        "fft2 + one ifft2 of 128x128 per position, fastest of the same number of runs timed "
        "between the sweeps; path fused = numba kernels (ptyframe.engines.pie_kernels), "
        "torch = the same maths in torch ops\n"
    )
    print("| engine | positions | torch threads | path | s / sweep | FFT floor s | ratio to FFT |")
    print("|---|---|---|---|---|---|---|")
    for jitter in args.jitter:
        ds = benchmark_case(jitter_px=jitter)
        meas = Measurements.from_dataset(ds)
        kind = "integer" if jitter == 0 else f"sub-pixel (jitter {jitter:g} px)"
        fused_epie = None
        for threads in args.threads:
            torch.set_num_threads(threads)
            for name in args.rules:
                for fused in (True, False):
                    med, fft_s = sweep_seconds(ds, meas, name, args.sweeps, fused)
                    path = "fused" if fused else "torch"
                    if name == "epie" and fused and threads == 1:
                        fused_epie = med
                    print(
                        f"| {name} | {meas.n} {kind} | {threads} | {path} | {med:.3f} | "
                        f"{fft_s:.3f} | {med / fft_s:.2f} |",
                        flush=True,
                    )
        if args.ptylab_python:
            torch.set_num_threads(1)
            lab = ptylab_seconds(args.ptylab_python, _rounded(ds), args.sweeps)
            ratio = f"ptyframe fused ePIE / PtyLab = {fused_epie / lab:.2f}" if fused_epie else ""
            print(
                f"| PtyLab 0.3.7 ePIE | {meas.n} {kind} (rounded) | 1 | - | {lab:.3f} | - | "
                f"{ratio} |"
            )


def _rounded(ds: PtychoDataset) -> PtychoDataset:
    """``ds`` with its positions rounded to whole pixels (what PtyLab does)."""
    g = ds.geometry
    geom = ScanGeometry(
        np.round(g.positions_px), g.window, g.object_shape, g.energy_ev, g.pixel_size_m
    )
    return PtychoDataset(geom, patterns=ds.intensities()[None])


if __name__ == "__main__":
    main()
