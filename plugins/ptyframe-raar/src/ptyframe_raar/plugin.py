"""Register ``engine=raar`` (and the ``engine=dm`` preset) with ptyframe."""

from __future__ import annotations

from ptyframe import hookimpl
from ptyframe_raar.raar import RaarConfig, RaarEngine


@hookimpl
def ptyframe_register(registry) -> None:
    """Register the engine: ``RaarEngine(config, prior)``, the prior built when rho > 0."""
    registry.add_engine(RaarConfig, RaarEngine)


@hookimpl
def ptyframe_config_searchpath() -> list[str]:
    """Offer the ``engine=dm`` preset (RAAR with beta = 1)."""
    return ["pkg://ptyframe_raar.conf"]
