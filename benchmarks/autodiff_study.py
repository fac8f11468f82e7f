"""Measure what makes ``engine=autodiff`` reconstruct a far-field case from a cold start.

Case (``ptyframe.simulation``, seed 0): the ``--phantom`` (``photo``: matplotlib's sample
photograph, see ``PhotoPhantom``; or a registered one: ``natural``, ``particles``), the
``focused`` probe, an ``n x n`` jittered raster at 70 % overlap (step ~16 px), 128 x 128
patterns, Poisson noise at ``--photons`` per pattern (``--n 25``: the 625-pattern, 506 x 506
case of the defaults study). Every variant starts from the runner's defaults: vacuum object, the
raised-cosine disk probe scaled to the mean photon count (``ptyframe.initial``).

Score (``interior_scores``): the object is cropped to the square lit by every scan position's
probe centre region (``[min pos + M/4, max pos + 3M/4)``), registered to the truth by
phase-only correlation (``ptyframe.metrics.align.register_subpixel``, integer part only),
corrected for the global complex scale, then NRMSE over the crop and the FRC of the two
crops, mean-subtracted and apodised by the same Hann window (so a constant scores ~0 at
every frequency above the window's own width). ``frc@1/2``: the mean of the FRC over rings
0.23-0.27 cycles/px (1/2 Nyquist). The last four columns are the project's own metric
(``ptyframe.metrics``: NRMSE and FRC band means of the windowed deviations).

Variants: a name of ``VARIANTS`` or ``key=value+key=value`` (``lr``, ``probe_lr``,
``minibatch``, ``delta``, ``loss=poisson``, ``warmup``, ``probe_start``, ``adam=1``);
``epie`` is ePIE at its defaults. Run (the README's table)::

    python benchmarks/autodiff_study.py --n 25 --epochs 100 --phantom photo \
        --variants defaults,epie,adam
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.measurements import Measurements
from ptyframe.engines.autodiff import AutodiffConfig, AutodiffEngine, OptimizerGroups
from ptyframe.engines.autodiff_precondition import PreconditionConfig
from ptyframe.engines.pie import EpieConfig, PieEngine
from ptyframe.initial import InitConfig, initial_state
from ptyframe.losses.base import LsqLoss, PoissonConfig, PoissonLoss
from ptyframe.metrics.align import register_subpixel
from ptyframe.metrics.plugin import FrcMetric, FrcMetricConfig, NrmseMetric, NrmseMetricConfig
from ptyframe.optimizers import AdamConfig, GdConfig
from ptyframe.simulation.simulate import simulate_dataset


class PhotoPhantom:
    """Matplotlib's sample photograph as amplitude ``[0.5, 1]`` and, flipped, phase ``[-1, 0]``.

    ``matplotlib/mpl-data/sample_data/grace_hopper.jpg`` (a natural image shipped with the
    matplotlib wheel; no network), grey-scaled, tiled by mirroring to the requested shape.
    """

    def generate(self, shape_px: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """Return the transmission ``[Ny, Nx]`` complex128."""
        from matplotlib import cbook
        from PIL import Image

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            img = np.asarray(Image.open(f).convert("L"), dtype=np.float64) / 255.0
        ny, nx = shape_px
        reps = (-(-ny // img.shape[0]) + 1, -(-nx // img.shape[1]) + 1)
        big = np.block(
            [[img[:: (-1) ** i, :: (-1) ** j] for j in range(reps[1])] for i in range(reps[0])]
        )
        amp = 0.5 + 0.5 * big[:ny, :nx]
        phase = -big[-ny:, -nx:][::-1, ::-1]
        return amp * np.exp(1j * phase)


def make_case(n: int, photons: float, path: Path, phantom: str = "natural") -> PtychoDataset:
    """Simulate (once) and open the case; see the module docstring."""
    if not path.exists():
        sim = simulate_dataset(
            phantom=PhotoPhantom() if phantom == "photo" else phantom,
            probe="focused",
            scan={"name": "raster", "n_y": n, "n_x": n},
            photons_per_pattern=photons,
            seed=0,
        )
        sim.write(path, overwrite=True)
    return PtychoDataset.open(path)


def interior_scores(est: np.ndarray, truth: np.ndarray, pos: np.ndarray, m: int) -> dict:
    """Return NRMSE and FRC at 1/4, 1/2, 3/4 Nyquist over the lit interior (module doc)."""
    lo = (pos.min(0) + m / 4).astype(int)
    hi = (pos.max(0) + 3 * m / 4).astype(int)
    a = est[lo[0] : hi[0], lo[1] : hi[1]].astype(np.complex128)
    b = truth[lo[0] : hi[0], lo[1] : hi[1]].astype(np.complex128)
    sy, sx = register_subpixel(b, a, upsample=1)
    a = np.roll(a, (-int(round(sy)), -int(round(sx))), axis=(0, 1))
    gamma = np.vdot(a, b) / max(np.vdot(a, a).real, 1e-30)
    a = a * gamma
    nrmse = float(np.linalg.norm(a - b) / np.linalg.norm(b))
    h, w = a.shape
    win = np.hanning(h)[:, None] * np.hanning(w)[None, :]
    fa = np.fft.fft2((a - a.mean()) * win)
    fb = np.fft.fft2((b - b.mean()) * win)
    k = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    out = {"nrmse": nrmse}
    for name, f in (("frc@1/4", 0.125), ("frc@1/2", 0.25), ("frc@3/4", 0.375)):
        sel = np.abs(k - f) < 0.02
        num = (fa[sel] * np.conj(fb[sel])).real.sum()
        den = np.sqrt((np.abs(fa[sel]) ** 2).sum() * (np.abs(fb[sel]) ** 2).sum())
        out[name] = float(num / den) if den > 0 else float("nan")
    return out


def project_scores(state: Any, ds: PtychoDataset) -> str:
    """Return the project's metrics (``ptyframe.metrics``: NRMSE, FRC bands) as a table cell."""
    est = state.object[0].detach().numpy()
    args = (est, ds.truth.object[0], ds.truth.illumination, ds.geometry.pixel_size_m)
    f = FrcMetric(FrcMetricConfig())(*args)
    q = NrmseMetric(NrmseMetricConfig())(*args)["nrmse"]
    return (
        f"{q:6.3f} {f['frc_quarter_nyquist']:6.3f} {f['frc_half_nyquist']:6.3f} "
        f"{f['frc_3q_nyquist']:6.3f}"
    )


def start(ds: PtychoDataset, meas: Measurements) -> Any:
    """Return the runner's default start (vacuum object, disk probe)."""
    return initial_state(InitConfig(), ds, meas)


def run_engine(engine: Any, ds: PtychoDataset, meas: Measurements, epochs: int, state=None):
    """Run ``epochs`` epochs; return (state, errors, seconds)."""
    state = state if state is not None else start(ds, meas)
    state = engine.init_state(state, ds)
    engine.prepare(meas, state)
    errs, t0 = [], time.perf_counter()
    for e in range(epochs):
        errs.append(engine.step(e).data_error)
    return engine.state, errs, time.perf_counter() - t0


def autodiff(**kw: Any) -> AutodiffEngine:
    """Build an autodiff engine from the defaults with the variant's changes.

    ``adam``: Adam for object and probe with ``lr``/``probe_lr`` (default 1e-2) and no
    preconditioning (the defaults before the preconditioner); ``gd``: GD with ``lr`` on the
    preconditioned gradients; ``delta``: the preconditioner's regularisation; ``minibatch``,
    ``loss`` (``poisson``), ``probe_start``.
    """
    opt = None
    if kw.get("adam"):
        opt = AdamConfig
    elif "lr" in kw or "probe_lr" in kw:
        opt = GdConfig
    default_lr = 1e-2 if kw.get("adam") else 1.0
    groups = OptimizerGroups(
        object=None if opt is None else opt(lr=kw.get("lr", default_lr)),
        probe=None if opt is None else opt(lr=kw.get("probe_lr", default_lr)),
    )
    pc = PreconditionConfig(
        enabled=not kw.get("adam"),
        delta_object=kw.get("delta", 0.5),
        delta_probe=kw.get("delta", 0.5),
    )
    cfg = AutodiffConfig(minibatch=kw.get("minibatch", 32), optimizers=groups, precondition=pc)
    if "probe_start" in kw:
        cfg.update_start = dataclasses.replace(cfg.update_start, probe=kw["probe_start"])
    warm = int(kw.get("warmup", PoissonConfig.lsq_warmup_epochs))
    loss = (
        PoissonLoss(PoissonConfig(lsq_warmup_epochs=warm))
        if kw.get("loss") == "poisson"
        else LsqLoss()
    )
    return AutodiffEngine(cfg, loss=loss)


VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "adam": {"adam": True},
    "adam_lr3e-2": {"adam": True, "lr": 3e-2},
    "adam_lr1e-1": {"adam": True, "lr": 1e-1},
    "adam_lr3e-3": {"adam": True, "lr": 3e-3},
    "adam_probe_lr1e-3": {"adam": True, "probe_lr": 1e-3},
    "adam_probe_start5": {"adam": True, "probe_start": 5},
    "adam_mb8": {"adam": True, "minibatch": 8},
    "adam_mb128": {"adam": True, "minibatch": 128},
    "adam_poisson": {"adam": True, "loss": "poisson"},
    "gd_lr0.5": {"lr": 0.5},
    "gd_lr1.5": {"lr": 1.5},
    "delta0.01": {"delta": 0.01},
    "delta0.5": {"delta": 0.5},
    "mb8": {"minibatch": 8},
    "mb128": {"minibatch": 128},
    "probe_start5": {"probe_start": 5},
    "poisson": {"loss": "poisson"},
}


def parse(name: str) -> dict[str, Any]:
    """Return the keywords of a variant written ``key=value+key=value`` (e.g. ``minibatch=8``)."""
    out: dict[str, Any] = {}
    for item in name.split("+"):
        key, val = item.split("=")
        out[key] = (
            val
            if key == "loss"
            else (int(val) if key in ("minibatch", "probe_start", "warmup") else float(val))
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--photons", type=float, default=1e6)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--variants", default="epie,defaults")
    p.add_argument("--phantom", default="natural")
    p.add_argument("--cache", default="/tmp/autodiff_study")
    args = p.parse_args()
    torch.set_num_threads(1)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{args.phantom}_{args.n}_{args.photons:.0e}.h5"
    ds = make_case(args.n, args.photons, path, args.phantom)
    meas = Measurements.from_dataset(ds)
    truth = ds.truth.object[0]
    pos = np.asarray(ds.geometry.positions_px)
    m = ds.window[0]
    print(f"case: {args.phantom}, {args.n}x{args.n} patterns {m}x{m}, {args.photons:.0e} photons")
    print(
        f"{'variant':22s} {'err@10':>7s} {'err@end':>7s} {'nrmse':>6s} {'frc1/4':>6s} "
        f"{'frc1/2':>6s} {'frc3/4':>6s} {'s/ep':>5s} | ptyframe.metrics: {'nrmse':>6s} "
        f"{'frc1/4':>6s} {'frc1/2':>6s} {'frc3/4':>6s}"
    )
    for name in args.variants.split(","):
        if name == "epie":
            eng: Any = PieEngine(EpieConfig(epochs=args.epochs))
        else:
            eng = autodiff(**(VARIANTS[name] if name in VARIANTS else parse(name)))
        state, errs, sec = run_engine(eng, ds, meas, args.epochs)
        s = interior_scores(state.object[0].detach().numpy(), truth, pos, m)
        print(
            f"{name:22s} {errs[min(9, len(errs) - 1)]:7.4f} {errs[-1]:7.4f} {s['nrmse']:6.3f} "
            f"{s['frc@1/4']:6.3f} {s['frc@1/2']:6.3f} {s['frc@3/4']:6.3f} "
            f"{sec / args.epochs:5.2f} | {' ' * 17} {project_scores(state, ds)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
