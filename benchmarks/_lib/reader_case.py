"""The readers' benchmark case: one simulation written in several file layouts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ptyframe.simulation.simulate import SimulatedData

#: The detector pixel pitch the layouts that need one are written with (metres).
PITCH_M = 75e-6


def simulate(seed: int) -> SimulatedData:
    """Return the readers' case ``conf/case/readers.yaml`` (particle film, focused probe,
    10 x 10 jittered raster of 64 x 64 patterns, 1e6 photons per pattern, Poisson) simulated
    with ``seed``."""
    import ptyframe

    return ptyframe.simulate_case("readers", [f"simulation.seed={seed}"])
