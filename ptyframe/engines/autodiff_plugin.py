"""Register ``engine=autodiff`` (Adorym-style optimisation by automatic differentiation)."""

from __future__ import annotations

from ptyframe.engines.autodiff import AutodiffConfig, build_autodiff
from ptyframe.hookspecs import hookimpl
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the autodiff engine."""
    registry.add("engine", "autodiff", build_autodiff, AutodiffConfig)
