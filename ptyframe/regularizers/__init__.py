"""Regularizers for the autodiff engine: L1, reweighted L1, total variation."""

from ptyframe.regularizers.base import (
    L1,
    L1Config,
    Regularizer,
    ReweightedL1,
    ReweightedL1Config,
    TotalVariation,
    TvConfig,
)

__all__ = [
    "L1",
    "L1Config",
    "Regularizer",
    "ReweightedL1",
    "ReweightedL1Config",
    "TotalVariation",
    "TvConfig",
]
