"""Register ``engine=epie_annealed`` and this package's Hydra presets with ptyframe.

ePIE (Maiden & Rodenburg 2009) with step sizes annealed per epoch ``e``::

    alpha_e = alpha / (1 + e / tau),   beta_e = beta / (1 + e / tau)

Large early steps find the object quickly; small late steps average out noise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ptyframe import hookimpl
from ptyframe.engines.base import EpochReport
from ptyframe.engines.pie import EpieConfig, PieEngine
from ptyframe.errors import ConfigError


@dataclass
class AnnealedEpieConfig(EpieConfig):
    """ePIE with alpha and beta divided by ``1 + epoch / tau``."""

    name: str = "epie_annealed"
    tau: float = 20.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not float(self.tau) > 0:
            raise ConfigError(f"epie_annealed.tau = {self.tau} must be > 0")


class AnnealedEpie(PieEngine):
    """Run ePIE sweeps with the annealed step sizes."""

    def __init__(self, config: AnnealedEpieConfig) -> None:
        super().__init__(config)
        self.base = config

    def step(self, epoch: int) -> EpochReport:
        factor = 1.0 / (1.0 + epoch / float(self.base.tau))
        self.config = replace(
            self.base, alpha=self.base.alpha * factor, beta=self.base.beta * factor
        )
        report = super().step(epoch)
        report.scalars["alpha"] = self.config.alpha
        return report


@hookimpl
def ptyframe_register(registry) -> None:
    """Register the engine."""
    registry.add_engine(AnnealedEpieConfig, AnnealedEpie)


@hookimpl
def ptyframe_config_searchpath() -> list[str]:
    """Offer the presets in ``ptyframe_annealed/conf`` (e.g. ``engine=epie_annealed_fast``)."""
    return ["pkg://ptyframe_annealed.conf"]
