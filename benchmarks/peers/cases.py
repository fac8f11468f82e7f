"""The simulated cases of the peer table, written as data-exchange files.

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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
