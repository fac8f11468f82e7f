"""Run PINE: a PIE sweep followed by the denoising step (Yamada et al., J. Appl. Cryst. 2024).

One epoch (the paper's Algorithm 1)::

    for r in a random order:                 ePIE (eqs. 14-15, 18-19), or rPIE
        update O_r and P from I_r
    O <- (1 - rho) O + rho D(O)              eq. 20, D(O) = D(Re O) + i D(Im O) (eq. 22)

PINE is the PIE config plus a prior: ``PineConfig`` is ``PieConfig`` (``ptyframe.engines.
config``) with ``inner`` (the sweep's rule) and the ``DenoiseSchedule`` fields, and the engine
is ``PieEngine(config, prior)``, the prior being the registered ``prior_step`` ``denoise``
(``ptyframe.engines.prior``) that ``ptyframe.compose`` builds with the run's denoiser.
``rho = 0`` is ePIE (or rPIE) exactly: no denoiser is built. The paper uses rho = 0.49 and
(alpha, beta) = (0.5, 0.1) at low dose and (0.8, 0.5) at high dose.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptyframe.engines.config import PIE_RULES, DenoiseSchedule, PieConfig
from ptyframe.engines.pie import PieEngine
from ptyframe.errors import ConfigError


@dataclass
class PineConfig(DenoiseSchedule, PieConfig):
    """PINE: ePIE/rPIE sweep + ``O <- (1 - rho) O + rho D(O)`` (Yamada et al. 2024, eq. 20)."""

    name: str = "pine"
    epochs: int = 150
    #: The sweep's rule: ``epie`` or ``rpie`` (alpha, beta are checked against its ranges).
    inner: str = "epie"
    alpha: float = 0.5
    beta: float = 0.1
    rho: float = 0.49

    @property
    def pie_rule(self) -> str:
        return self.inner

    def __post_init__(self) -> None:
        if self.inner not in PIE_RULES:
            raise ConfigError(f"pine.inner = {self.inner!r}; choose epie or rpie")
        super().__post_init__()


#: PINE's engine is the PIE engine given a prior (kept as a name for readers of PINE code).
PineEngine = PieEngine
