"""Register ``engine=raar`` (and the ``engine=dm`` preset) with ptyframe."""

from __future__ import annotations

from ptyframe import hookimpl
from ptyframe_raar.raar import RaarConfig, RaarEngine


def build_raar(config: RaarConfig, context) -> RaarEngine:  # noqa: ANN001
    """Build RAAR; with rho > 0, attach ptyframe's registered PINE denoising step."""
    prior = None
    if config.rho > 0:
        prior = context.registry.build(
            "prior_step", {"name": "denoise", "rho": config.rho}, context
        )
    return RaarEngine(config, prior)


@hookimpl
def ptyframe_register(registry) -> None:  # noqa: ANN001
    """Register the engine."""
    registry.add("engine", "raar", build_raar, RaarConfig)


@hookimpl
def ptyframe_config_searchpath() -> list[str]:
    """Offer the ``engine=dm`` preset (RAAR with beta = 1)."""
    return ["pkg://ptyframe_raar.conf"]
