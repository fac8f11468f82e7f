"""Register the optimizers: ``gd``, ``momentum``, ``adam``, ``cg``, ``lbfgs``, ``scipy``."""

from __future__ import annotations

from ptyframe.hookspecs import hookimpl
from ptyframe.optimizers import BUILTIN, build_optimizer
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register every built-in optimizer (factories return ``maker(params)``)."""
    for config_cls, _ in BUILTIN.values():
        registry.add_optimizer(config_cls, build_optimizer, doc=(config_cls.__doc__ or "").strip())
