"""Register the losses: ``loss=lsq`` and ``loss=poisson``."""

from __future__ import annotations

from ptyframe.hookspecs import hookimpl
from ptyframe.losses.base import LsqConfig, PoissonConfig, build_lsq, build_poisson
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the LSQ and Poisson data-mismatch terms."""
    registry.add("loss", "lsq", build_lsq, LsqConfig)
    registry.add("loss", "poisson", build_poisson, PoissonConfig)
