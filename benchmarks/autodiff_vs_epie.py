"""Benchmark the autodiff engine against ePIE on the foundation benchmark case.

Case (synthesised here, seed 0): 625 far-field patterns of 128 x 128 pixels from a 25 x 25
raster with a 16-pixel step over a 512 x 512 object (smooth random phase up to 1 rad and
absorption up to 30 %), a defocused disk probe (radius 24 px, quadratic phase 2 rad at the
rim), 1e6 photons per pattern, noiseless unless ``--poisson``. Both engines start from the
same state: object ones, a flat-phase disk probe of the same radius (the robust default start
of the PINE reference code), exact positions; both refine object and probe.

Reported per engine: median seconds per epoch, the data error (PINE normalised amplitude error)
after 5 epochs and at the end, and the epochs and seconds each needs to reach the data errors
0.05, 0.02 and the larger of the two final errors (so both reach it), or ``--target``.

Run: ``python benchmarks/autodiff_vs_epie.py [--epochs 30] [--minibatch 64] [--lr 0.01]``.
Single-threaded by default (``--threads``): on a 2-core machine small ops collapse with 2.
"""

from __future__ import annotations

import argparse
import math
import statistics

import numpy as np
import torch

from ptyframe.data.geometry import ScanGeometry
from ptyframe.data.measurements import Measurements
from ptyframe.engines.autodiff import AutodiffConfig, AutodiffEngine, OptimizerGroups
from ptyframe.engines.pie import EpieConfig, PieEngine
from ptyframe.optimizers import AdamConfig
from ptyframe.physics.farfield import FarFieldPtychography
from ptyframe.state import ReconstructionState


def smooth_field(n: int, width: float, g: torch.Generator) -> torch.Tensor:
    """Return a Gaussian-filtered random field ``[n, n]`` scaled to [0, 1]."""
    k = torch.fft.fftfreq(n)
    f = torch.randn(n, n, generator=g, dtype=torch.float64)
    filt = torch.exp(-(k[:, None] ** 2 + k[None] ** 2) / (2 * width**2))
    f = torch.fft.ifft2(torch.fft.fft2(f) * filt).real
    return (f - f.min()) / (f.max() - f.min())


def disk(m: int, radius: float, rim_phase: float) -> torch.Tensor:
    """Return a disk probe ``[1, m, m]`` with a quadratic phase ``rim_phase`` at the rim."""
    y, x = torch.meshgrid(torch.arange(m) - m // 2, torch.arange(m) - m // 2, indexing="ij")
    r = torch.sqrt(y.double() ** 2 + x.double() ** 2)
    return torch.polar(torch.clamp(radius - r + 1, 0, 1), rim_phase * (r / radius) ** 2)[None]


def make_case(poisson: bool) -> tuple[Measurements, ReconstructionState]:
    """Return the benchmark measurements and the common starting state."""
    m, n_side, step, photons = 128, 25, 16, 1e6
    g = torch.Generator().manual_seed(0)
    yy, xx = np.meshgrid(np.arange(n_side) * step, np.arange(n_side) * step, indexing="ij")
    pos = np.stack([yy.ravel(), xx.ravel()], 1).astype(np.float64)
    size = (n_side - 1) * step + m
    obj = torch.polar(1 - 0.3 * smooth_field(size, 0.02, g), -smooth_field(size, 0.015, g))
    probe = disk(m, 24, 2.0)
    probe = probe * math.sqrt(photons / float(probe.abs().square().sum()))
    inten = FarFieldPtychography().intensities(obj[None], probe, torch.from_numpy(pos))
    if poisson:
        inten = torch.poisson(inten, generator=g)
    geom = ScanGeometry(pos, (m, m), (size, size), 8000.0, 2e-8)
    meas = Measurements(inten.sqrt().float(), None, np.arange(len(pos)), geom)
    start = disk(m, 24, 0.0)
    start = start * math.sqrt(photons / float(start.abs().square().sum()))
    state = ReconstructionState(
        torch.ones(1, size, size, dtype=torch.complex64),
        start.to(torch.complex64),
        torch.from_numpy(pos.copy()),
    )
    return meas, state


def run(engine, meas: Measurements, state: ReconstructionState, epochs: int) -> list:
    """Return (seconds, data error) of every epoch."""
    engine.prepare(meas, state)
    out = []
    for e in range(epochs):
        rep = engine.step(e)
        out.append((rep.seconds, rep.data_error))
    return out


def reach(history: list, target: float) -> tuple[int | None, float | None]:
    """Return (epochs, cumulative seconds) to reach ``data_error <= target``."""
    t = 0.0
    for e, (sec, err) in enumerate(history):
        t += sec
        if err <= target:
            return e + 1, t
    return None, None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--minibatch", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--probe-lr", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--target", type=float, default=None)
    p.add_argument("--poisson", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    meas, start = make_case(args.poisson)
    results = {}
    epie = PieEngine(EpieConfig(epochs=args.epochs, center_probe=False))
    results["epie"] = run(epie, meas, start.clone(), args.epochs)
    groups = OptimizerGroups(object=AdamConfig(lr=args.lr), probe=AdamConfig(lr=args.probe_lr))
    cfg = AutodiffConfig(epochs=args.epochs, minibatch=args.minibatch, optimizers=groups)
    name = f"autodiff (adam, batch {args.minibatch})"
    results[name] = run(AutodiffEngine(cfg), meas, start.clone(), args.epochs)
    common = max(h[-1][1] for h in results.values())
    targets = [args.target] if args.target else [0.05, 0.02, common]
    print(f"case: 625 patterns 128x128, object 512x512, raster step 16; threads={args.threads}")
    print(f"targets: {', '.join(f'{t:.4f}' for t in targets)} (last: both engines' worst final)")
    head = "".join(f" {'ep/s->' + format(t, '.3f'):>16s}" for t in targets)
    print(f"{'engine':32s} {'s/epoch':>8s} {'err@5':>8s} {'err@end':>8s}{head}")
    for name, hist in results.items():
        spe = statistics.median(s for s, _ in hist)
        e5 = hist[min(4, len(hist) - 1)][1]
        cells = ""
        for t in targets:
            n, sec = reach(hist, t)
            cells += f" {'-' if n is None else f'{n} / {sec:.1f}s':>16s}"
        print(f"{name:32s} {spe:8.3f} {e5:8.4f} {hist[-1][1]:8.4f}{cells}")


if __name__ == "__main__":
    main()
