"""Register the regularizers: ``l1``, ``reweighted_l1`` and ``tv``."""

from __future__ import annotations

from ptyframe.hookspecs import hookimpl
from ptyframe.registry import ScopedRegistry
from ptyframe.regularizers.base import (
    L1,
    L1Config,
    ReweightedL1,
    ReweightedL1Config,
    TotalVariation,
    TvConfig,
)


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the L1, reweighted-L1 and total-variation regularizers."""
    registry.add_regularizer(L1Config, L1)
    registry.add_regularizer(ReweightedL1Config, ReweightedL1)
    registry.add_regularizer(TvConfig, TotalVariation)
