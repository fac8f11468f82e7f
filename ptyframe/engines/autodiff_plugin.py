"""Register ``engine=autodiff`` (Adorym-style optimisation by automatic differentiation) and
``engine=hio`` (HIO/ER support projections for full-field CDI)."""

from __future__ import annotations

from ptyframe.engines.autodiff import AutodiffConfig, AutodiffEngine
from ptyframe.engines.cdi import HioConfig, HioEngine
from ptyframe.hookspecs import hookimpl
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the autodiff engine and the HIO/ER engine."""
    registry.add_engine(AutodiffConfig, AutodiffEngine)
    registry.add_engine(HioConfig, HioEngine)
