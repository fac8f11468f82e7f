"""Regularizers added to the data term: L1, reweighted L1 and total variation.

The full objective is ``L = D + sum_i alpha_i R_i`` (Adorym supplement eq. S16). Every
regularizer acts on the two real object fields a forward model exposes
(``ptyframe.physics.objects``): the phase shift ``phi = k delta dz`` and the absorption
``mu = k beta dz`` per slice (for a complex transmission ``O``: ``-arg O`` and ``-log|O|``),
chosen by ``components`` (``both``, ``phase`` or ``absorption``). Each term is a mean over the
``N_o`` voxels, as in the supplement's Table S1 and Adorym's code:

    L1            R = 1/N_o sum |x|                               (Tibshirani 1996)
    reweighted L1 R = 1/N_o sum w |x|,  w = 1 / (|x_prev| + eps)  (Candes, Wakin & Boyd 2008)
    TV            R = 1/N_o sum |x_{i+1,j} - x_ij| + |x_{i,j+1} - x_ij|   (anisotropic)
                  or 1/N_o sum sqrt(dx^2 + dy^2 + eps^2)          (``isotropic``)

The reweighted-L1 weights are refreshed from the current object at the start of each epoch
(``update``) and kept in ``state_dict`` for exact resumption. No regularizer is on by default
(an Adorym defect not repeated: TV was on by default there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ptyframe.errors import ConfigError

COMPONENTS = ("both", "phase", "absorption")


def _check(cfg: Any) -> None:
    if cfg.weight < 0:
        raise ConfigError(f"regularizer {cfg.name}.weight = {cfg.weight} must be >= 0")
    if cfg.components not in COMPONENTS:
        raise ConfigError(
            f"regularizer {cfg.name}.components = {cfg.components!r}; use one of {COMPONENTS}"
        )


@dataclass
class L1Config:
    """L1 norm (sparsity) of the object fields."""

    name: str = "l1"
    #: Weight ``alpha_i`` of this term in ``L = D + sum_i alpha_i R_i``.
    weight: float = 1e-3
    #: Object fields it acts on: ``both``, ``phase`` or ``absorption``.
    components: str = "both"

    def __post_init__(self) -> None:
        _check(self)


@dataclass
class ReweightedL1Config:
    """Reweighted L1 norm (Candes et al. 2008): weights 1 / (|x| + eps) refreshed per epoch."""

    name: str = "reweighted_l1"
    #: Weight ``alpha_i`` of this term in ``L = D + sum_i alpha_i R_i``.
    weight: float = 1e-3
    #: Object fields it acts on: ``both``, ``phase`` or ``absorption``.
    components: str = "both"
    #: Weights ``1 / (|x_prev| + eps)``: keeps them finite where ``x`` is zero.
    eps: float = 1e-3

    def __post_init__(self) -> None:
        _check(self)
        if not self.eps > 0:
            raise ConfigError(f"reweighted_l1.eps = {self.eps} must be > 0")


@dataclass
class TvConfig:
    """Total variation of the object fields (anisotropic by default)."""

    name: str = "tv"
    #: Weight ``alpha_i`` of this term in ``L = D + sum_i alpha_i R_i``.
    weight: float = 1e-3
    #: Object fields it acts on: ``both``, ``phase`` or ``absorption``.
    components: str = "both"
    #: Isotropic TV ``sqrt(dx^2 + dy^2 + eps^2)`` instead of ``|dx| + |dy|``.
    isotropic: bool = False
    #: Also penalise differences between neighbouring slices (multislice objects).
    include_z: bool = False
    #: Smoothing of the isotropic TV's square root (differentiable at 0).
    eps: float = 1e-8

    def __post_init__(self) -> None:
        _check(self)


class Regularizer:
    """``weight * R(fields)``; see the module docstring."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def select(self, phase: torch.Tensor, absorption: torch.Tensor) -> list[torch.Tensor]:
        """Return the fields this regularizer acts on."""
        c = self.config.components
        return [f for f, k in ((phase, "phase"), (absorption, "absorption")) if c in (k, "both")]

    def term(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Return ``R(x)`` for one field (``index`` 0 phase, 1 absorption)."""
        raise NotImplementedError

    def __call__(self, phase: torch.Tensor, absorption: torch.Tensor) -> torch.Tensor:
        """Return ``weight * sum over selected fields of R(field)``."""
        fields = self.select(phase, absorption)
        total = sum(self.term(f, i) for i, f in enumerate(fields))
        return float(self.config.weight) * total  # type: ignore[return-value]

    def update(self, phase: torch.Tensor, absorption: torch.Tensor) -> None:
        """Refresh internal state from the current object (start of every epoch)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


class L1(Regularizer):
    def term(self, x: torch.Tensor, index: int) -> torch.Tensor:
        return x.abs().mean()


class ReweightedL1(Regularizer):
    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.weights: list[torch.Tensor] = []

    def update(self, phase: torch.Tensor, absorption: torch.Tensor) -> None:
        eps = float(self.config.eps)
        self.weights = [1.0 / (f.detach().abs() + eps) for f in self.select(phase, absorption)]

    def term(self, x: torch.Tensor, index: int) -> torch.Tensor:
        if len(self.weights) <= index or self.weights[index].shape != x.shape:
            return x.abs().mean() / float(self.config.eps)  # before the first update: w = 1/eps
        return (self.weights[index].to(x.dtype) * x.abs()).mean()

    def state_dict(self) -> dict[str, Any]:
        return {"weights": [w.clone() for w in self.weights]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weights = [w.clone() for w in state.get("weights", [])]


class TotalVariation(Regularizer):
    def term(self, x: torch.Tensor, index: int) -> torch.Tensor:
        diffs = [x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]]
        if self.config.include_z and x.dim() >= 3 and x.shape[-3] > 1:
            diffs.append(x[..., 1:, :, :] - x[..., :-1, :, :])
        n = x.numel()
        if not self.config.isotropic:
            return sum(d.abs().sum() for d in diffs) / n  # type: ignore[return-value]
        # isotropic: forward differences cropped to the common interior
        sl = [d[..., : x.shape[-2] - 1, : x.shape[-1] - 1] for d in diffs[:2]]
        sq = sl[0].square() + sl[1].square()
        if len(diffs) == 3:
            dz = diffs[2][..., : x.shape[-2] - 1, : x.shape[-1] - 1]
            sq = sq[..., 1:, :, :] + dz.square()
        return torch.sqrt(sq + float(self.config.eps) ** 2).sum() / n
