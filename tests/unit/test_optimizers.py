"""Check the optimizers against their definitions, reference implementations and test problems."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

import ptyframe
from ptyframe.errors import ConfigError
from ptyframe.optimizers import (
    Adam,
    AdamConfig,
    CgConfig,
    ConjugateGradient,
    GdConfig,
    GradientDescent,
    Lbfgs,
    LbfgsConfig,
    Momentum,
    MomentumConfig,
    ScipyConfig,
    ScipyOptimizer,
    halvings,
)


def quadratic(n: int = 12, cond: float = 50.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (A, b) of f(x) = 1/2 x^T A x - b^T x with A SPD of condition number ``cond``."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    eig = torch.logspace(0, torch.log10(torch.tensor(cond)), n, dtype=torch.float64)
    return q @ torch.diag(eig) @ q.T, torch.randn(n, generator=g, dtype=torch.float64)


def run(opt_cls: type, cfg: Any, f, x0: torch.Tensor, steps: int) -> torch.Tensor:
    x = x0.clone().requires_grad_()
    opt = opt_cls(cfg, [x])

    def closure(need_grad: bool) -> tuple[float, list[torch.Tensor] | None]:
        with torch.enable_grad():
            val = f(x)
            grads = list(torch.autograd.grad(val, [x])) if need_grad else None
        return float(val.detach()), grads

    for _ in range(steps):
        val, grads = closure(True)
        opt.step(grads, val, closure if opt.needs_closure else None)
    return x.detach()


def test_gd_halves_its_step_at_n_3n_7n() -> None:
    n = 5
    counts = [halvings(t, n) for t in range(40)]
    changes = [t for t in range(1, 40) if counts[t] != counts[t - 1]]
    assert changes == [5, 15, 35]
    assert halvings(1000, 0) == 0
    opt = GradientDescent(GdConfig(lr=1.0, base_iterations=2), [torch.zeros(1)])
    lrs = []
    for _ in range(8):
        lrs.append(opt.current_lr())
        opt.step([torch.zeros(1)])
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_gd_step_is_minus_lr_times_the_gradient_for_complex_tensors() -> None:
    z = torch.tensor([1 + 2j, -1j], dtype=torch.complex128)
    g = torch.tensor([0.5 - 1j, 2 + 0j], dtype=torch.complex128)
    GradientDescent(GdConfig(lr=0.1), [z]).step([g])
    assert torch.allclose(z, torch.tensor([0.95 + 2.1j, -0.2 - 1j], dtype=torch.complex128))


@pytest.mark.parametrize("complex_params", [False, True])
def test_adam_and_momentum_match_torch_optim(complex_params: bool) -> None:
    g = torch.Generator().manual_seed(1)
    dtype = torch.complex128 if complex_params else torch.float64
    x0 = torch.randn(7, generator=g, dtype=dtype)
    target = torch.randn(7, generator=g, dtype=dtype)

    def loss(x: torch.Tensor) -> torch.Tensor:
        return (x - target).abs().pow(3).sum()

    for ours, ref in (
        (lambda p: Adam(AdamConfig(lr=0.05), p), lambda p: torch.optim.Adam(p, lr=0.05)),
        (
            lambda p: Momentum(MomentumConfig(lr=0.01, gamma=0.8), p),
            lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.8),
        ),
    ):
        a = x0.clone().requires_grad_()
        b = x0.clone().requires_grad_()
        oa, ob = ours([a]), ref([b])
        for _ in range(25):
            (ga,) = torch.autograd.grad(loss(a), [a])
            oa.step([ga])
            ob.zero_grad()
            loss(b).backward()
            ob.step()
        assert torch.allclose(a, b, atol=1e-12), type(oa).__name__


@pytest.mark.parametrize(
    ("cls", "cfg", "steps"),
    [
        (GradientDescent, GdConfig(lr=0.019), 400),
        (Momentum, MomentumConfig(lr=0.005, gamma=0.9), 300),
        (Adam, AdamConfig(lr=0.05), 600),
        (ConjugateGradient, CgConfig(lr=0.01), 60),
        (Lbfgs, LbfgsConfig(lr=0.01), 40),
        (ScipyOptimizer, ScipyConfig(maxiter=20), 3),
    ],
)
def test_every_optimizer_minimises_an_ill_conditioned_quadratic(cls, cfg, steps) -> None:
    a, b = quadratic()
    x_star = torch.linalg.solve(a, b)

    def f(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x @ a @ x - b @ x

    x = run(cls, cfg, f, torch.zeros_like(b), steps)
    assert (x - x_star).norm() < 1e-3 * x_star.norm(), cls.__name__


def test_cg_and_lbfgs_need_few_iterations_where_gradient_descent_needs_many() -> None:
    a, b = quadratic(cond=1000.0)
    x_star = torch.linalg.solve(a, b)

    def f(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x @ a @ x - b @ x

    gd = run(GradientDescent, GdConfig(lr=1.9e-3), f, torch.zeros_like(b), 40)
    cg = run(ConjugateGradient, CgConfig(lr=1e-3), f, torch.zeros_like(b), 40)
    lb = run(Lbfgs, LbfgsConfig(lr=1e-3), f, torch.zeros_like(b), 40)
    err = {
        k: float((v - x_star).norm() / x_star.norm())
        for k, v in (("gd", gd), ("cg", cg), ("lbfgs", lb))
    }
    assert err["cg"] < 1e-3 and err["lbfgs"] < 0.1 * err["gd"], err


def test_lbfgs_minimises_rosenbrock() -> None:
    def f(x: torch.Tensor) -> torch.Tensor:
        return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2

    x = run(Lbfgs, LbfgsConfig(lr=1e-3), f, torch.tensor([-1.2, 1.0], dtype=torch.float64), 200)
    assert torch.allclose(x, torch.ones(2, dtype=torch.float64), atol=1e-4)


@pytest.mark.parametrize(
    ("cls", "cfg"),
    [
        (GradientDescent, GdConfig(lr=0.01, base_iterations=3)),
        (Momentum, MomentumConfig(lr=0.01)),
        (Adam, AdamConfig(lr=0.05)),
        (ConjugateGradient, CgConfig(lr=0.01)),
        (Lbfgs, LbfgsConfig(lr=0.01)),
    ],
)
def test_state_dict_resumes_bit_for_bit(cls, cfg) -> None:
    a, b = quadratic(n=6)

    def f(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x @ a @ x - b @ x

    def steps(opt, x, k: int) -> None:
        def closure(need_grad: bool):
            with torch.enable_grad():
                val = f(x)
                return float(val.detach()), (
                    list(torch.autograd.grad(val, [x])) if need_grad else None
                )

        for _ in range(k):
            val, grads = closure(True)
            opt.step(grads, val, closure)

    straight = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    steps(cls(cfg, [straight]), straight, 10)
    first = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    opt = cls(cfg, [first])
    steps(opt, first, 5)
    saved = copy.deepcopy(opt.state_dict())
    resumed = first.detach().clone().requires_grad_()
    opt2 = cls(cfg, [resumed])
    opt2.load_state_dict(saved)
    steps(opt2, resumed, 5)
    assert torch.equal(resumed, straight)


def test_optimizer_configs_validate_and_registry_returns_makers() -> None:
    with pytest.raises(ConfigError, match="lr"):
        AdamConfig(lr=0.0)
    with pytest.raises(ConfigError, match="gamma"):
        MomentumConfig(gamma=1.0)
    with pytest.raises(ConfigError, match="base_iterations"):
        GdConfig(base_iterations=-1)
    reg = ptyframe.registry()
    for name in ("gd", "momentum", "adam", "cg", "lbfgs", "scipy"):
        maker = reg.build("optimizer", name)
        opt = maker([torch.zeros(3)])
        assert opt.config.name == name
    assert isinstance(reg.build("optimizer", {"name": "adam", "lr": 0.5})([torch.zeros(1)]), Adam)
