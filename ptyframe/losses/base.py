"""Data-mismatch terms on modelled intensities: least squares on amplitudes and Poisson NLL.

Adorym supplement section D.1 with the mean reduction of its reference code::

    D_LSQ     = 1/N_d sum_m ( sqrt(I_pred,m) - sqrt(I_meas,m) )^2                 (eq. S14)
    D_Poisson = 1/N_d sum_m  s I_pred,m - s I_meas,m log(s I_pred,m + eps)        (eq. S15)

``m`` runs over the *measured* pixels of the minibatch (the valid mask excludes unmeasured
ones, e.g. a beamstop or detector gaps) and ``N_d`` is their number over all ranks. A loss
returns the *sum* over this rank's pixels; the engine divides by the global ``N_d``, so that
the all-reduced gradient equals the single-process gradient. ``s`` (``scale``) multiplies
both intensities (Adorym's Poisson multiplier); ``eps`` keeps the logarithm finite.

The amplitude ``sqrt(I_pred)`` has derivative ``1 / (2 sqrt(I))``, infinite at ``I = 0``;
``safe_sqrt`` returns the value with a zero gradient there (the supplement's ``I + eps``
remedy without biasing the value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ptyframe.errors import ConfigError


class _SafeSqrt(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.sqrt(torch.clamp(x, min=0.0))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.where(y > 0, grad / (2.0 * y), torch.zeros_like(grad))


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """Return ``sqrt(max(x, 0))`` with gradient ``1 / (2 sqrt x)`` where ``x > 0``, else 0."""
    return _SafeSqrt.apply(x)


class Loss:
    """A data-mismatch term: ``__call__(I_pred, sqrt(I_meas), valid) -> sum over pixels``.

    ``curvature``: the term's second derivative in the modelled amplitude ``|Psi|`` at the
    solution, per pixel (LSQ: 2; Poisson: ``4 s``, its Fisher information), used by the
    autodiff engine's Gauss-Newton preconditioner.
    """

    config: object
    curvature: float = 2.0

    def set_epoch(self, epoch: int) -> None:
        """Hear that epoch ``epoch`` starts (default: nothing; the Poisson loss's warm start)."""

    def __call__(
        self, predicted: torch.Tensor, amplitudes: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        """Return the summed mismatch of ``predicted`` ``[B, M, M]`` against ``amplitudes``."""
        raise NotImplementedError


@dataclass
class LsqConfig:
    """Least squares on amplitudes (Adorym supp. eq. S14)."""

    name: str = "lsq"


@dataclass
class PoissonConfig:
    """Poisson negative log-likelihood (Adorym supp. eq. S15)."""

    name: str = "poisson"
    #: Multiplier ``s`` of both intensities (Adorym's Poisson multiplier, eq. S15).
    scale: float = 1.0
    #: Added inside the logarithm, ``log(s I_pred + eps)``, to keep it finite.
    eps: float = 1e-6
    #: Epochs of amplitude least squares first (a warm start; see ``PoissonLoss``).
    lsq_warmup_epochs: int = 10

    def __post_init__(self) -> None:
        if not self.scale > 0 or not self.eps > 0:
            raise ConfigError(
                f"poisson.scale ({self.scale}) and poisson.eps ({self.eps}) must be > 0"
            )
        if int(self.lsq_warmup_epochs) < 0:
            raise ConfigError(f"poisson.lsq_warmup_epochs = {self.lsq_warmup_epochs} must be >= 0")


def _masked_sum(terms: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if valid is None:
        return terms.sum()
    return torch.where(valid, terms, torch.zeros_like(terms)).sum()


class LsqLoss(Loss):
    """``sum (sqrt(I_pred) - sqrt(I_meas))^2`` over measured pixels."""

    def __init__(self, config: LsqConfig | None = None) -> None:
        self.config = config or LsqConfig()

    def __call__(
        self, predicted: torch.Tensor, amplitudes: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        return _masked_sum((safe_sqrt(predicted) - amplitudes).square(), valid)


class PoissonLoss(Loss):
    """``sum s I_pred - s I_meas log(s I_pred + eps)`` over measured pixels.

    Warm start: for the first ``lsq_warmup_epochs`` epochs (the engine calls ``set_epoch``)
    the loss is the amplitude LSQ. From a cold start (a vacuum object, a flat probe) the
    model is dark where the data are bright and the Poisson gradient ``(1 - I_meas/I_pred)
    Psi`` is unbounded there, so no fixed step fits; LSQ, Poisson's variance-stabilised
    approximation, has the bounded ``(1 - sqrt(I_meas/I_pred)) Psi`` and brings the model
    close enough for the likelihood (measured in ``benchmarks/autodiff_study.py``).
    """

    config: PoissonConfig

    def __init__(self, config: PoissonConfig | None = None) -> None:
        self.config = config or PoissonConfig()
        self.set_epoch(int(self.config.lsq_warmup_epochs))

    def set_epoch(self, epoch: int) -> None:
        """Select LSQ (``epoch < lsq_warmup_epochs``) or the likelihood, and its curvature."""
        self.warming = epoch < int(self.config.lsq_warmup_epochs)
        self.curvature = 2.0 if self.warming else 4.0 * float(self.config.scale)

    def __call__(
        self, predicted: torch.Tensor, amplitudes: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        if self.warming:
            return _masked_sum((safe_sqrt(predicted) - amplitudes).square(), valid)
        s, eps = float(self.config.scale), float(self.config.eps)
        lam = predicted * s
        terms = lam - amplitudes.square() * s * torch.log(lam + eps)
        return _masked_sum(terms, valid)
