"""Register ``engine=autodiff`` (Adorym-style optimisation by automatic differentiation) and
``engine=hio`` (HIO/ER support projections for full-field CDI)."""

from __future__ import annotations

from ptyframe.engines.autodiff import AutodiffConfig, build_autodiff
from ptyframe.engines.cdi import HioConfig, build_hio
from ptyframe.hookspecs import hookimpl
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the autodiff engine and the HIO/ER engine."""
    registry.add("engine", "autodiff", build_autodiff, AutodiffConfig)
    registry.add("engine", "hio", build_hio, HioConfig)
