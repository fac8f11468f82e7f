"""Register the PIE-family engines (ePIE, rPIE, PINE) and the denoising prior step."""

from __future__ import annotations

from ptyframe.engines.pie import EpieConfig, RpieConfig, build_epie, build_rpie
from ptyframe.hookspecs import hookimpl
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register ``engine=epie`` and ``engine=rpie``."""
    registry.add("engine", "epie", build_epie, EpieConfig)
    registry.add("engine", "rpie", build_rpie, RpieConfig)
