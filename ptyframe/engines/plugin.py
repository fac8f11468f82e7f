"""Register the PIE-family engines (ePIE, rPIE, PINE) and the denoising prior step."""

from __future__ import annotations

from ptyframe.engines.pie import EpieConfig, RpieConfig, build_epie, build_rpie
from ptyframe.engines.pine import PineConfig, build_pine
from ptyframe.engines.prior import DenoiseStepConfig, build_denoise_step
from ptyframe.hookspecs import hookimpl
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register ``engine=epie``, ``engine=rpie``, ``engine=pine`` and the denoising step."""
    registry.add("engine", "epie", build_epie, EpieConfig)
    registry.add("engine", "rpie", build_rpie, RpieConfig)
    registry.add("engine", "pine", build_pine, PineConfig)
    registry.add("prior_step", "denoise", build_denoise_step, DenoiseStepConfig)
