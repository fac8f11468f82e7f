"""Register the optional callbacks (kind ``callback``); the core ones are always on."""

from __future__ import annotations

from ptyframe.callbacks.early_stop import EarlyStop, EarlyStopConfig
from ptyframe.hookspecs import hookimpl
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register ``early_stop``."""
    registry.add("callback", "early_stop", EarlyStop, EarlyStopConfig)
