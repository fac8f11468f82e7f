"""Register the regularizers: ``l1``, ``reweighted_l1`` and ``tv``."""

from __future__ import annotations

from ptyframe.hookspecs import hookimpl
from ptyframe.registry import ScopedRegistry
from ptyframe.regularizers.base import (
    L1Config,
    ReweightedL1Config,
    TvConfig,
    build_l1,
    build_reweighted_l1,
    build_tv,
)


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the L1, reweighted-L1 and total-variation regularizers."""
    registry.add("regularizer", "l1", build_l1, L1Config)
    registry.add("regularizer", "reweighted_l1", build_reweighted_l1, ReweightedL1Config)
    registry.add("regularizer", "tv", build_tv, TvConfig)
