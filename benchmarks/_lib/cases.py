"""The simulated cases of the benchmarks: the peer table's, written as data-exchange files,
and the in-memory ones of the engine and sweep timings.

The peer table's cases (``cases``; ``small_cases`` are two smaller ones of the same kind):

Every case is simulated by ``ptyframe.simulation.simulate_dataset`` (ptyframe's own far-field
model; Poisson noise; ``/truth`` object, probe and illumination) and written with
``SimulatedData.write``, so all tools read the same file.

``natural_1e6``
    625 patterns of 128 x 128 (25 x 25 raster, step 16 px, +-2 px uniform jitter rounded to
    whole pixels), object ~516 x 516 px (``natural`` phantom: 1/f^2 random amplitude in
    [0.8, 1] and phase in [-0.6, 0] rad), the defocused ``focused`` probe, 1e6 photons per
    pattern, 100 sweeps.
``particles_1e6``, ``particles_1e5``, ``particles_1e4``
    The same geometry with the ePIE defaults study's film: weakly absorbing particles of radius
    2-14 px whose phase reaches 1 rad (``particles`` phantom, ``beta/delta = 0.12``), at 1e6,
    1e5 and 1e4 photons per pattern, 300 sweeps.
``lowdose``
    ``conf/experiment/lowdose.yaml`` (PINE paper sec. 5.1): 100 patterns of 64 x 64 (10 x 10
    raster, 70 % overlap, 1 px jitter), particles (<= 0.35 rad), ``i0_origin = 100``, 300 sweeps.

``--quick`` shrinks each case to 64 x 64 windows on a 7 x 7 raster with an 8 px step and
20 sweeps (lowdose keeps its geometry): a smoke run of the whole pipeline in minutes.

In memory (``PtychoDataset``, no file):

``natural_case``
    ``phantom=natural`` (seeded, procedural), a 25 x 25 raster (linear overlap 0.7) of
    128 x 128 patterns from the registered ``ptycho2d`` simulation with the ``focused``
    probe, 1e6 photons per pattern (Poisson); the engines table's case.
``benchmark_case``
    The ePIE sweep's case: 625 noiseless patterns of 128 x 128 (25 x 25 raster, step 16 px,
    optional uniform jitter), a smooth random object, a soft disc probe with a quadratic
    phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.geometry import ScanGeometry, object_frame
from ptyframe.physics.farfield import FarFieldPtychography
from ptyframe.physics.fft import to_centred
from ptyframe.registry import BuildContext, Registry
from ptyframe.simulation.simulate import simulate_dataset


class StepRaster:
    """Raster of ``n x n`` positions ``step_px`` apart, uniform jitter rounded to pixels.

    ``generate`` returns (y, x) top-left corners ``[n * n, 2]`` shifted to start at 0; the
    probe diameter the simulator passes is ignored (the step is fixed in pixels).
    """

    name = "step_raster"

    def __init__(self, n: int, step_px: int, jitter_px: float) -> None:
        self.n, self.step_px, self.jitter_px = int(n), int(step_px), float(jitter_px)

    def generate(self, probe_diameter_px: float, rng: np.random.Generator) -> np.ndarray:
        """Return integer-valued positions ``[n * n, 2]`` float64 (y, x), row-major."""
        yy, xx = np.meshgrid(np.arange(self.n), np.arange(self.n), indexing="ij")
        pos = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.float64) * self.step_px
        pos = np.round(pos + rng.uniform(-self.jitter_px, self.jitter_px, size=pos.shape))
        return pos - pos.min(axis=0, keepdims=True)


@dataclass(frozen=True)
class Case:
    """One benchmark case: how to simulate it and how many sweeps the table runs."""

    name: str
    sweeps: int
    phantom: dict[str, Any]
    scan: Any
    settings: dict[str, Any] = field(default_factory=dict)

    def simulate(self, path: Path) -> Path:
        """Write the case's data-exchange file to ``path`` (reused if it exists)."""
        if not path.exists():
            sim = simulate_dataset(
                phantom=self.phantom, probe={"name": "focused"}, scan=self.scan, **self.settings
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            sim.write(path)
        return path


PARTICLE_FILM = {"name": "particles", "radius_min_px": 2.0, "radius_max_px": 14.0}
PARTICLE_FILM["max_phase_rad"] = 1.0
LOWDOSE = {
    "window_px": 64,
    "pixel_size_m": 2.0e-8,
    "energy_ev": 8000.0,
    "photons_per_pattern": None,
    "i0_origin": 1.0e2,
    "noise": "poisson",
    "seed": 0,
}
LOWDOSE_SCAN = {"name": "raster", "n_y": 10, "n_x": 10, "overlap": 0.7, "jitter_px": 1.0}


def cases(quick: bool = False) -> dict[str, Case]:
    """Return the cases by name (``quick``: small windows and few sweeps)."""
    window, n, step, jitter = (64, 7, 8, 1.0) if quick else (128, 25, 16, 2.0)
    big, small = (20, 20) if quick else (100, 300)
    out = {"natural_1e6": Case("natural_1e6", big, {"name": "natural"}, None, {})}
    for dose in ("1e6", "1e5", "1e4"):
        out[f"particles_{dose}"] = Case(
            f"particles_{dose}", small, PARTICLE_FILM, None, {"photons_per_pattern": float(dose)}
        )
    common = {"window_px": window, "noise": "poisson", "seed": 0}
    for key, case in list(out.items()):
        settings = {"photons_per_pattern": 1e6, **common, **case.settings}
        scan = StepRaster(n, step, jitter)
        out[key] = Case(case.name, case.sweeps, case.phantom, scan, settings)
    out["lowdose"] = Case("lowdose", small, {"name": "particles"}, LOWDOSE_SCAN, LOWDOSE)
    return out


def small_cases(sweeps: int) -> dict[str, Case]:
    """Return ``natural`` (11 x 11 raster, 1e6 photons) and ``film`` (9 x 9, the particle film,
    1e5 photons): 128 x 128 windows, 16 px step, +-2 px jitter, Poisson noise."""
    common = {"window_px": 128, "noise": "poisson", "seed": 0}
    return {
        "natural": Case(
            "natural",
            sweeps,
            {"name": "natural"},
            StepRaster(11, 16, 2.0),
            {**common, "photons_per_pattern": 1e6},
        ),
        "film": Case(
            "film",
            sweeps,
            PARTICLE_FILM,
            StepRaster(9, 16, 2.0),
            {**common, "photons_per_pattern": 1e5},
        ),
    }


def natural_case(
    registry: Registry,
    photons: float = 1e6,
    seed: int = 0,
    phantom: str = "natural",
    overlap: float = 0.7,
) -> PtychoDataset:
    """Return the engines table's in-memory dataset (see the module docstring).

    ``seed`` draws the phantom, the scan jitter and the noise; ``phantom`` is any registered
    phantom (``natural``, ``particles``, ...) and ``overlap`` the raster's linear overlap.
    """
    ctx = BuildContext(registry)
    phantom_c = registry.build("phantom", phantom, ctx)
    probe = registry.build("probe", "focused", ctx)
    scan = registry.build("scan", {"name": "raster", "n_y": 25, "n_x": 25, "overlap": overlap}, ctx)
    sim = registry.build(
        "simulation",
        {"name": "ptycho2d", "photons_per_pattern": photons, "object_margin_px": 3, "seed": seed},
        ctx,
    )
    sim_data = sim.run(phantom_c, probe, scan)
    return PtychoDataset(sim_data.geometry, patterns=sim_data.patterns, truth=sim_data.truth)


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
