"""Update rules on a group of tensors: gradient descent, momentum, Adam (Adorym supp. sec. F).

An ``Optimizer`` owns a list of leaf tensors (real or complex) and updates them in place from
their gradients. Complex tensors are treated as pairs of reals (``view_as_real``): PyTorch's
gradient of a real loss with respect to ``z = x + iy`` is ``dL/dx + i dL/dy``, so every rule
below acts on the real and imaginary parts as independent real unknowns.

    GD        x <- x - rho_t g                                    (supp. eq. S19)
              rho_t = rho / 2^s, s = #{S : t >= N_bi (2^(S+1) - 1)}: rho is halved when the
              iteration index t hits N_bi, 3 N_bi, 7 N_bi, ... = sum_{s=0}^{S} 2^s N_bi
              (the supplement's step-halving schedule; ``base_iterations = 0`` keeps rho).
    Momentum  v <- gamma v + rho g;  x <- x - v                   (supp. eq. S20; Qian 1999)
    Adam      m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
              x <- x - rho m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps)  (Kingma & Ba 2014)

``state_dict`` holds the iteration count and every moment buffer, so a resumed run continues
bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ptyframe.errors import ConfigError

#: ``closure(need_grad) -> (objective, grads or None)`` at the current parameter values,
#: reduced over ranks; grads are this optimizer's parameters' gradients.
Closure = Callable[[bool], tuple[float, list[torch.Tensor] | None]]


def real_view(t: torch.Tensor) -> torch.Tensor:
    """Return a real view of ``t`` (``view_as_real`` for complex tensors)."""
    return torch.view_as_real(t) if t.is_complex() else t


def dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Return the real inner product ``sum_i <a_i, b_i>`` over lists of tensors (float64)."""
    pairs = zip(a, b, strict=True)
    return float(sum((real_view(x).double() * real_view(y).double()).sum() for x, y in pairs))


def _check_lr(cfg: Any) -> None:
    if not cfg.lr > 0:
        raise ConfigError(f"optimizer {cfg.name}.lr = {cfg.lr} must be > 0")


class Optimizer:
    """Base class: ``step(grads, loss, closure)`` updates ``params`` in place."""

    #: If True the engine passes a closure (line searches, quasi-Newton updates).
    needs_closure: bool = False

    def __init__(self, config: Any, params: list[torch.Tensor]) -> None:
        self.config = config
        self.params = list(params)
        self.iteration = 0

    @property
    def lr(self) -> float:
        return float(self.config.lr)

    def step(
        self, grads: list[torch.Tensor], loss: float = 0.0, closure: Closure | None = None
    ) -> None:
        """Apply one update from ``grads`` (one per parameter) at objective value ``loss``."""
        with torch.no_grad():
            self._step(grads, loss, closure)
        self.iteration += 1

    def _step(self, grads: list[torch.Tensor], loss: float, closure: Closure | None) -> None:
        raise NotImplementedError

    def _buffers(self) -> dict[str, list[torch.Tensor]]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Return the iteration count and copies of every buffer."""
        out: dict[str, Any] = {"iteration": self.iteration}
        for k, v in self._buffers().items():
            out[k] = [b.clone() for b in v]
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.iteration = int(state.get("iteration", 0))
        for k, v in self._buffers().items():
            for dst, src in zip(v, state.get(k, []), strict=False):
                dst.copy_(src)


@dataclass
class GdConfig:
    """Gradient descent with the Adorym step-halving schedule (supp. eq. S19)."""

    name: str = "gd"
    #: Step size (the learning rate).
    lr: float = 1e-3
    #: Iterations before the step is first halved (supp. eq. S19); 0: never.
    base_iterations: int = 0

    def __post_init__(self) -> None:
        _check_lr(self)
        if self.base_iterations < 0:
            raise ConfigError(f"gd.base_iterations = {self.base_iterations} must be >= 0")


def halvings(iteration: int, base_iterations: int) -> int:
    """Return how often rho was halved before ``iteration`` (0 when ``base_iterations == 0``).

    rho is halved at t = N (2^(S+1) - 1), S = 0, 1, ...: the count is floor(log2(t/N + 1)).
    """
    if base_iterations <= 0:
        return 0
    return (iteration // base_iterations + 1).bit_length() - 1


class GradientDescent(Optimizer):
    def current_lr(self) -> float:
        """Return the step size of the current iteration (after halvings)."""
        return self.lr / 2.0 ** halvings(self.iteration, int(self.config.base_iterations))

    def _step(self, grads: list[torch.Tensor], loss: float, closure: Closure | None) -> None:
        rho = self.current_lr()
        for p, g in zip(self.params, grads, strict=False):
            p.sub_(g, alpha=rho)


@dataclass
class MomentumConfig:
    """Momentum gradient descent (supp. eq. S20)."""

    name: str = "momentum"
    #: Step size (the learning rate).
    lr: float = 1e-3
    #: Momentum: the share of the previous update kept in the next.
    gamma: float = 0.9

    def __post_init__(self) -> None:
        _check_lr(self)
        if not 0 <= self.gamma < 1:
            raise ConfigError(f"momentum.gamma = {self.gamma} must lie in [0, 1)")


class Momentum(Optimizer):
    def __init__(self, config: Any, params: list[torch.Tensor]) -> None:
        super().__init__(config, params)
        self.velocity = [torch.zeros_like(p) for p in self.params]

    def _buffers(self) -> dict[str, list[torch.Tensor]]:
        return {"velocity": self.velocity}

    def _step(self, grads: list[torch.Tensor], loss: float, closure: Closure | None) -> None:
        gamma = float(self.config.gamma)
        for p, g, v in zip(self.params, grads, self.velocity, strict=False):
            v.mul_(gamma).add_(g, alpha=self.lr)
            p.sub_(v)


@dataclass
class AdamConfig:
    """Adam (Kingma & Ba 2014), Adorym's default for every refinable quantity."""

    name: str = "adam"
    #: Step size (the learning rate).
    lr: float = 1e-3
    #: Decay of the running mean of the gradient.
    beta1: float = 0.9
    #: Decay of the running mean of the squared gradient.
    beta2: float = 0.999
    #: Added to the root of the second moment (keeps the step finite).
    eps: float = 1e-8

    def __post_init__(self) -> None:
        _check_lr(self)
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1) or not self.eps > 0:
            raise ConfigError("adam.beta1 and adam.beta2 must lie in [0, 1) and adam.eps > 0")


class Adam(Optimizer):
    def __init__(self, config: Any, params: list[torch.Tensor]) -> None:
        super().__init__(config, params)
        self.m = [torch.zeros_like(real_view(p)) for p in self.params]
        self.v = [torch.zeros_like(real_view(p)) for p in self.params]

    def _buffers(self) -> dict[str, list[torch.Tensor]]:
        return {"m": self.m, "v": self.v}

    def _step(self, grads: list[torch.Tensor], loss: float, closure: Closure | None) -> None:
        c = self.config
        b1, b2, eps = float(c.beta1), float(c.beta2), float(c.eps)
        t = self.iteration + 1
        bc1 = 1.0 - b1**t
        bc2 = 1.0 - b2**t
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=False):
            gr = real_view(g)
            m.mul_(b1).add_(gr, alpha=1.0 - b1)
            v.mul_(b2).addcmul_(gr, gr, value=1.0 - b2)
            denom = (v / bc2).sqrt_().add_(eps)
            real_view(p).addcdiv_(m, denom, value=-self.lr / bc1)
