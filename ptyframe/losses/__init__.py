"""Data-mismatch terms (losses) for the autodiff engine: LSQ and Poisson."""

from ptyframe.losses.base import (
    Loss,
    LsqConfig,
    LsqLoss,
    PoissonConfig,
    PoissonLoss,
    safe_sqrt,
)

__all__ = ["Loss", "LsqConfig", "LsqLoss", "PoissonConfig", "PoissonLoss", "safe_sqrt"]
