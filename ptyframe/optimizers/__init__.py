"""Optimizers for the autodiff engine: GD (step halving), momentum, Adam, CG, L-BFGS, SciPy.

A registered optimizer's factory returns a *maker*: ``maker(params) -> Optimizer`` (the
parameters are only known once the engine has seen the data).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from ptyframe.optimizers.base import (
    Adam,
    AdamConfig,
    Closure,
    GdConfig,
    GradientDescent,
    Momentum,
    MomentumConfig,
    Optimizer,
    halvings,
)
from ptyframe.optimizers.linesearch import (
    CgConfig,
    ConjugateGradient,
    Lbfgs,
    LbfgsConfig,
    ScipyConfig,
    ScipyOptimizer,
)

Maker = Callable[[list[torch.Tensor]], Optimizer]

BUILTIN: dict[str, tuple[type, type[Optimizer]]] = {
    "gd": (GdConfig, GradientDescent),
    "momentum": (MomentumConfig, Momentum),
    "adam": (AdamConfig, Adam),
    "cg": (CgConfig, ConjugateGradient),
    "lbfgs": (LbfgsConfig, Lbfgs),
    "scipy": (ScipyConfig, ScipyOptimizer),
}


def build_optimizer(config: Any, context: object = None) -> Maker:
    """Return ``maker(params)`` for the built-in optimizer ``config.name``."""
    return partial(BUILTIN[config.name][1], config)


__all__ = [
    "BUILTIN",
    "Adam",
    "AdamConfig",
    "CgConfig",
    "Closure",
    "ConjugateGradient",
    "GdConfig",
    "GradientDescent",
    "Lbfgs",
    "LbfgsConfig",
    "Maker",
    "Momentum",
    "MomentumConfig",
    "Optimizer",
    "ScipyConfig",
    "ScipyOptimizer",
    "build_optimizer",
    "halvings",
]
