"""Line-search optimizers: nonlinear conjugate gradient, L-BFGS and a SciPy wrapper.

Adorym supplement section F: CG with the Polak-Ribiere direction (Polak & Ribiere 1969;
Polyak 1969) and an adaptive line search (Nocedal & Wright 2006, sec. 3.5), and a wrapper of
``scipy.optimize.minimize``. Here, for gradient ``g_t`` and objective ``f``::

    beta_t = max(0, <g_t, g_t - g_{t-1}> / <g_{t-1}, g_{t-1}>)          (PR+, restarts at 0)
    d_t    = -g_t + beta_t d_{t-1}      (reset to -g_t unless <g_t, d_t> < 0)
    alpha0 = alpha_{t-1} <g_{t-1}, d_{t-1}> / <g_t, d_t>   (first step: lr)
    alpha  = the better of alpha0 and the quadratic-interpolation step (N&W eq. 3.58), then
             safeguarded interpolating backtracking until the Armijo condition
             f(x + alpha d) <= f(x) + c1 alpha <g, d> holds

L-BFGS (Nocedal & Wright alg. 7.4): ``d = -H g`` by the two-loop recursion over the last
``history`` pairs ``s = x_{t+1} - x_t``, ``y = g(x_{t+1}) - g(x_t)``, both gradients on the same
minibatch (one extra gradient evaluation per step), ``H_0 = <s, y>/<y, y>``; the same line
search from ``alpha = 1`` (``lr`` on the first step), with interpolation only when
backtracking. Both are meant for full-batch or large-minibatch runs (``engine.minibatch`` >=
the number of tiles): a line search on a noisy minibatch objective is of little use.

``ScipyOptimizer`` runs ``scipy.optimize.minimize`` (``method``, default L-BFGS-B) for
``maxiter`` iterations per engine step on the flattened real parameters, from the closure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptyframe.errors import ConfigError
from ptyframe.optimizers.base import Closure, Optimizer, _check_lr, dot, real_view


def _axpy(
    params: list[torch.Tensor], base: list[torch.Tensor], alpha: float, d: list[torch.Tensor]
) -> None:
    for p, b, di in zip(params, base, d, strict=False):
        p.copy_(b).add_(di, alpha=alpha)


def armijo(
    params: list[torch.Tensor],
    d: list[torch.Tensor],
    loss: float,
    slope: float,
    alpha: float,
    closure: Closure,
    c1: float,
    max_backtracks: int,
    interpolate: bool = True,
) -> float:
    """Find a step along ``d`` that satisfies Armijo; move ``params`` there; return it (0: none).

    With ``interpolate`` the first trial ``alpha0`` is followed by the minimiser of the
    quadratic through ``f(0)``, ``f'(0)`` and ``f(alpha0)`` (Nocedal & Wright eq. 3.58), and
    the better of the two is kept: exact on quadratics. Backtracking also uses that
    interpolation, safeguarded to ``[alpha/10, alpha/2]``.
    """
    base = [p.clone() for p in params]

    def at(a: float) -> float:
        _axpy(params, base, a, d)
        f, _ = closure(False)
        return float(f) if np.isfinite(f) else np.inf

    f_a = at(alpha)
    if interpolate and np.isfinite(f_a):
        curv = f_a - loss - slope * alpha
        if curv > 0:
            a_q = -slope * alpha * alpha / (2.0 * curv)
            f_q = at(a_q)
            if f_q < f_a:
                alpha, f_a = a_q, f_q
            else:
                _axpy(params, base, alpha, d)
    for _ in range(max_backtracks):
        if f_a <= loss + c1 * alpha * slope:
            return alpha
        curv = f_a - loss - slope * alpha
        a_q = -slope * alpha * alpha / (2.0 * curv) if np.isfinite(curv) and curv > 0 else 0.0
        alpha = min(max(a_q, 0.1 * alpha), 0.5 * alpha)
        f_a = at(alpha)
    for p, b in zip(params, base, strict=False):
        p.copy_(b)
    return 0.0


@dataclass
class CgConfig:
    """Nonlinear conjugate gradient (Polak-Ribiere+) with a backtracking line search."""

    name: str = "cg"
    #: Length of the first line-search step (later ones scale from the previous).
    lr: float = 1e-3
    #: Sufficient-decrease constant of the backtracking (Armijo) line search.
    c1: float = 1e-4
    #: Most halvings of the step in one line search.
    max_backtracks: int = 20

    def __post_init__(self) -> None:
        _check_lr(self)
        if not 0 < self.c1 < 1 or self.max_backtracks < 1:
            raise ConfigError("cg.c1 must lie in (0, 1) and cg.max_backtracks be >= 1")


class ConjugateGradient(Optimizer):
    needs_closure = True

    def __init__(self, config: Any, params: list[torch.Tensor]) -> None:
        super().__init__(config, params)
        self.g_prev = [torch.zeros_like(p) for p in self.params]
        self.d_prev = [torch.zeros_like(p) for p in self.params]
        self.alpha_slope = torch.zeros(2, dtype=torch.float64)  # (alpha, slope) of last step

    def _buffers(self) -> dict[str, list[torch.Tensor]]:
        return {"g_prev": self.g_prev, "d_prev": self.d_prev, "alpha_slope": [self.alpha_slope]}

    def _step(self, grads: list[torch.Tensor], loss: float, closure: Closure | None) -> None:
        if closure is None:
            raise ValueError("cg needs a closure")
        gg_prev = dot(self.g_prev, self.g_prev)
        beta = 0.0
        if gg_prev > 0:
            beta = max(0.0, (dot(grads, grads) - dot(grads, self.g_prev)) / gg_prev)
        d = [-g + beta * dp for g, dp in zip(grads, self.d_prev, strict=False)]
        slope = dot(grads, d)
        if not slope < 0:
            d = [-g for g in grads]
            slope = -dot(grads, grads)
        if slope == 0:
            return
        a_prev, s_prev = (float(x) for x in self.alpha_slope)
        alpha = a_prev * s_prev / slope if a_prev > 0 else self.lr
        c = self.config
        alpha = armijo(self.params, d, loss, slope, alpha, closure, c.c1, c.max_backtracks)
        for dst, src in zip(self.g_prev, grads, strict=False):
            dst.copy_(src)
        if alpha == 0:  # restart from steepest descent with the base step next time
            for dp in self.d_prev:
                dp.zero_()
            self.alpha_slope.zero_()
            return
        for dst, src in zip(self.d_prev, d, strict=False):
            dst.copy_(src)
        self.alpha_slope.copy_(torch.tensor([alpha, slope], dtype=torch.float64))


@dataclass
class LbfgsConfig:
    """Limited-memory BFGS (two-loop recursion) with a backtracking line search."""

    name: str = "lbfgs"
    #: Length of the first line-search step (later ones scale from the previous).
    lr: float = 1e-3
    #: Number of past (step, gradient change) pairs kept.
    history: int = 10
    #: Sufficient-decrease constant of the backtracking (Armijo) line search.
    c1: float = 1e-4
    #: Most halvings of the step in one line search.
    max_backtracks: int = 20

    def __post_init__(self) -> None:
        _check_lr(self)
        if self.history < 1 or not 0 < self.c1 < 1 or self.max_backtracks < 1:
            raise ConfigError("lbfgs.history >= 1, lbfgs.c1 in (0, 1), max_backtracks >= 1")


class Lbfgs(Optimizer):
    needs_closure = True

    def __init__(self, config: Any, params: list[torch.Tensor]) -> None:
        super().__init__(config, params)
        self.s: list[list[torch.Tensor]] = []
        self.y: list[list[torch.Tensor]] = []

    def state_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "s": [[t.clone() for t in s] for s in self.s],
            "y": [[t.clone() for t in y] for y in self.y],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state.get("iteration", 0))
        self.s = [[t.clone() for t in s] for s in state.get("s", [])]
        self.y = [[t.clone() for t in y] for y in state.get("y", [])]

    def direction(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """Return ``-H g`` by the two-loop recursion (``-g`` without history)."""
        q = [g.clone() for g in grads]
        alphas = []
        for s, y in zip(reversed(self.s), reversed(self.y), strict=False):
            rho = 1.0 / dot(y, s)
            a = rho * dot(s, q)
            alphas.append((a, rho))
            for qi, yi in zip(q, y, strict=False):
                qi.sub_(yi, alpha=a)
        if self.s:
            gamma = dot(self.s[-1], self.y[-1]) / dot(self.y[-1], self.y[-1])
            q = [qi * gamma for qi in q]
        for (a, rho), s, y in zip(reversed(alphas), self.s, self.y, strict=False):
            b = rho * dot(y, q)
            for qi, si in zip(q, s, strict=False):
                qi.add_(si, alpha=a - b)
        return [-qi for qi in q]

    def _step(self, grads: list[torch.Tensor], loss: float, closure: Closure | None) -> None:
        if closure is None:
            raise ValueError("lbfgs needs a closure")
        d = self.direction(grads)
        slope = dot(grads, d)
        if not slope < 0:
            self.s, self.y = [], []
            d = [-g for g in grads]
            slope = -dot(grads, grads)
        if slope == 0:
            return
        alpha0 = 1.0 if self.s else self.lr
        x0 = [p.clone() for p in self.params]
        c = self.config
        alpha = armijo(
            self.params,
            d,
            loss,
            slope,
            alpha0,
            closure,
            c.c1,
            c.max_backtracks,
            interpolate=not self.s,
        )
        if alpha == 0:
            self.s, self.y = [], []
            return
        _, g_new = closure(True)
        assert g_new is not None
        s = [p - b for p, b in zip(self.params, x0, strict=False)]
        y = [gn - g for gn, g in zip(g_new, grads, strict=False)]
        if dot(s, y) > 1e-12 * max(dot(y, y), 1e-300):
            self.s.append(s)
            self.y.append(y)
            if len(self.s) > int(c.history):
                self.s.pop(0)
                self.y.pop(0)


@dataclass
class ScipyConfig:
    """``scipy.optimize.minimize`` for ``maxiter`` iterations per engine step."""

    name: str = "scipy"
    #: Not used: SciPy's methods choose their own steps (every optimizer has an ``lr``).
    lr: float = 1.0
    #: The ``method`` of ``scipy.optimize.minimize``.
    method: str = "L-BFGS-B"
    #: SciPy iterations per engine step.
    maxiter: int = 10

    def __post_init__(self) -> None:
        if self.maxiter < 1:
            raise ConfigError(f"scipy.maxiter = {self.maxiter} must be >= 1")


class ScipyOptimizer(Optimizer):
    needs_closure = True

    def _step(self, grads: list[torch.Tensor], loss: float, closure: Closure | None) -> None:
        from scipy.optimize import minimize

        if closure is None:
            raise ValueError("scipy optimizer needs a closure")
        views = [real_view(p) for p in self.params]
        sizes = [v.numel() for v in views]

        def assign(x: np.ndarray) -> None:
            off = 0
            for v, n in zip(views, sizes, strict=False):
                v.copy_(torch.from_numpy(x[off : off + n]).reshape(v.shape).to(v.dtype))
                off += n

        def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
            assign(x)
            f, g = closure(True)
            assert g is not None
            flat = np.concatenate(
                [real_view(gi).detach().double().reshape(-1).cpu().numpy() for gi in g]
            )
            return float(f), flat

        x0 = np.concatenate([v.detach().double().reshape(-1).cpu().numpy() for v in views])
        res = minimize(
            fun,
            x0,
            jac=True,
            method=self.config.method,
            options={"maxiter": int(self.config.maxiter)},
        )
        assign(res.x if np.isfinite(res.fun) and res.fun <= loss else x0)
