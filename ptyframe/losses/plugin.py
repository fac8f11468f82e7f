"""Register the losses: ``loss=lsq`` and ``loss=poisson``."""

from __future__ import annotations

from ptyframe.hookspecs import hookimpl
from ptyframe.losses.base import LsqConfig, LsqLoss, PoissonConfig, PoissonLoss
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the LSQ and Poisson data-mismatch terms."""
    registry.add_loss(LsqConfig, LsqLoss)
    registry.add_loss(PoissonConfig, PoissonLoss)
