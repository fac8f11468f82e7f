"""The readers' benchmark case: one simulation written in several file layouts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ptyframe.simulation.simulate import SimulatedData

#: The detector pixel pitch the layouts that need one are written with (metres).
PITCH_M = 75e-6


def simulate(seed: int) -> SimulatedData:
    """Return the readers' case (particle film, focused probe, 10 x 10 jittered raster of
    64 x 64 patterns, 1e6 photons per pattern, Poisson) simulated with ``seed``."""
    from ptyframe.simulation.simulate import simulate_dataset

    return simulate_dataset(
        phantom="particles",
        probe="focused",
        scan={"name": "raster", "n_y": 10, "n_x": 10, "overlap": 0.7, "jitter_px": 1.0},
        window_px=64,
        photons_per_pattern=1e6,
        seed=seed,
    )
