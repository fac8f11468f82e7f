"""Run PINE: a PIE sweep followed by the denoising step (Yamada et al., J. Appl. Cryst. 2024).

One epoch (the paper's Algorithm 1)::

    for r in a random order:                 ePIE (eqs. 14-15, 18-19), or rPIE
        update O_r and P from I_r
    O <- (1 - rho) O + rho D(O)              eq. 20, D(O) = D(Re O) + i D(Im O) (eq. 22)

``rho = 0`` is ePIE (or rPIE) exactly: the same engine runs the sweep and no denoiser is
built. The paper uses rho = 0.49 and (alpha, beta) = (0.5, 0.1) at low dose and (0.8, 0.5) at
high dose. The denoising step is the registered ``prior_step`` ``denoise``
(``ptyframe.engines.prior``), so other engines can attach it too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ptyframe.data.measurements import Measurements
from ptyframe.distributed.base import Distribution
from ptyframe.engines.base import Engine, EpochReport, check_range
from ptyframe.engines.pie import EpieConfig, PieEngine, RpieConfig
from ptyframe.engines.prior import DenoiseStep, DenoiseStepConfig, build_denoise_step
from ptyframe.errors import ConfigError
from ptyframe.registry import BuildContext
from ptyframe.state import ReconstructionState


@dataclass
class PineConfig:
    """PINE: ePIE/rPIE sweep + ``O <- (1 - rho) O + rho D(O)`` (Yamada et al. 2024, eq. 20)."""

    name: str = "pine"
    epochs: int = 150
    inner: str = "epie"
    alpha: float = 0.5
    beta: float = 0.1
    rho: float = 0.49
    denoise_every: int = 1
    denoise_start: int = 0
    probe_update_start: int = 0
    fix_probe: bool = False
    center_probe: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.inner not in ("epie", "rpie"):
            raise ConfigError(f"pine.inner = {self.inner!r}; choose epie or rpie")
        check_range("pine", "rho", self.rho, 0.0, 0.5, lo_open=False, hi_open=True)
        self.inner_config()  # checks alpha, beta, epochs for the chosen sweep

    def inner_config(self) -> EpieConfig | RpieConfig:
        cls = EpieConfig if self.inner == "epie" else RpieConfig
        try:
            return cls(
                name=self.inner,
                epochs=self.epochs,
                alpha=self.alpha,
                beta=self.beta,
                probe_update_start=self.probe_update_start,
                fix_probe=self.fix_probe,
                center_probe=self.center_probe,
                seed=self.seed,
            )
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(f"{self.inner}.", "pine.", 1)) from None

    def prior_config(self) -> DenoiseStepConfig:
        return DenoiseStepConfig(rho=self.rho, every=self.denoise_every, start=self.denoise_start)


class PineEngine(Engine):
    """PIE sweep (delegated to ``PieEngine``) then the denoising prior step."""

    prefers_single_thread = False  # the sweep sets one thread itself; convolutions use all

    def __init__(self, config: PineConfig, prior: DenoiseStep) -> None:
        super().__init__()
        self.config = config
        self.sweep_engine = PieEngine(config.inner_config(), config.inner)
        self.prior = prior

    def prepare(
        self,
        measurements: Measurements,
        state: ReconstructionState,
        distribution: Distribution | None = None,
        seed: int = 0,
    ) -> None:
        super().prepare(measurements, state, distribution, seed)
        self.sweep_engine.prepare(measurements, state, distribution, seed)

    def step(self, epoch: int) -> EpochReport:
        """Run the sweep of ``epoch`` then (if due) the denoising step."""
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            report = self.sweep_engine.step(epoch)
        finally:
            torch.set_num_threads(threads)
        assert self.state is not None
        t0 = time.perf_counter()
        spent = self.prior.apply(self.state, epoch)
        report.seconds += time.perf_counter() - t0
        report.scalars["denoise_seconds"] = spent
        return report

    def state_dict(self) -> dict[str, Any]:
        """Return the sweep engine's state and the prior's (its frozen normalisation)."""
        return {**self.sweep_engine.state_dict(), "prior": self.prior.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        state = dict(state)
        self.prior.load_state_dict(state.pop("prior", {}))
        self.sweep_engine.load_state_dict(state)


def build_pine(config: PineConfig, context: BuildContext) -> PineEngine:
    """Build PINE with the run's denoiser (only when rho > 0)."""
    return PineEngine(config, build_denoise_step(config.prior_config(), context))
