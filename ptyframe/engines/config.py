"""Hold the config fields the engines share, once: one base per family.

* ``EngineConfig``: ``name``, ``epochs``, ``seed`` (every engine);
* ``PieFamilyConfig``: what every fast engine of the epoch frame (``ptyframe.engines.frame``)
  has: the probe schedule (``probe_update_start``, ``fix_probe``, ``center_probe``) and the
  backend (``backend``, ``fft``: ``ptyframe.engines.backend``);
* ``PieConfig``: the ePIE/rPIE step sizes ``alpha``, ``beta`` with the ranges of the rule
  (``pie_rule``) that uses them (ePIE: PINE paper eqs. 18-19; rPIE: Maiden, Johnson & Li,
  Optica 4, 736 (2017), eq. 6);
* ``DenoiseSchedule``: PINE's denoising step ``O <- (1 - rho) O + rho D(O)`` (Yamada et al.,
  J. Appl. Cryst. 57 (2024), eq. 20) every ``denoise_every`` epochs from ``denoise_start``;
  an engine whose constructor takes a ``prior`` is given that step by ``ptyframe.compose``
  when ``rho > 0`` (``rho = 0`` builds no denoiser: the engine exactly).

A component's config class is one of these extended with its own fields and its ``name``.
"""

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ptyframe.engines.backend import check_choice
from ptyframe.engines.checks import check_range
from ptyframe.engines.corrections.config import (
    FluxConfig,
    PositionConfig,
    ProbeVariationConfig,
    RefineSwitches,
    typed,
)
from ptyframe.engines.prior import DenoiseStepConfig
from ptyframe.errors import ConfigError

PIE_RULES = ("epie", "rpie")


@dataclass
class EngineConfig:
    """Fields every engine has: its name, the number of epochs, the visiting-order seed."""

    name: str = "engine"
    epochs: int = 100
    #: Seed of the visiting order (None: the run's ``seed``).
    seed: int | None = None

    def __post_init__(self) -> None:
        if int(self.epochs) < 0:
            raise ConfigError(f"{self.name}.epochs = {self.epochs} must be >= 0")


@dataclass
class PieFamilyConfig(EngineConfig):
    """What the fast engines share: the probe schedule and the backend (the PIE family,
    minibatch PIE, LSQML, RAAR)."""

    #: First epoch (0-based) that updates the probe.
    probe_update_start: int = 0
    #: Keep the probe as it starts.
    fix_probe: bool = False
    #: Roll probe and object so the probe's intensity centroid sits at the window centre.
    center_probe: bool = True
    #: The sweep's backend: auto, torch or numba (``ptyframe.engines.backend``).
    backend: str = "auto"
    #: The numba sweep's transforms: auto, torch or fftw.
    fft: str = "auto"
    #: What the run refines beyond object and probe (``engine.refine.positions=true``);
    #: the corrections of the experiment's nuisances (``ptyframe.engines.corrections``),
    #: each refused by an engine whose ``Capabilities`` do not declare it.
    refine: RefineSwitches = field(default_factory=RefineSwitches)
    #: Position correction (``engine.positions.start``, ``max_step_px``, ...).
    positions: PositionConfig = field(default_factory=PositionConfig)
    #: Orthogonal probe relaxation (``engine.probe_variation.modes=K``, K >= 1: on).
    probe_variation: ProbeVariationConfig = field(default_factory=ProbeVariationConfig)
    #: A flux scalar per pattern (``engine.flux.refine=true``).
    flux: FluxConfig = field(default_factory=FluxConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.name, self.backend, self.fft)
        self.refine = typed(self.refine, RefineSwitches)
        self.positions = typed(self.positions, PositionConfig)
        self.probe_variation = typed(self.probe_variation, ProbeVariationConfig)
        self.flux = typed(self.flux, FluxConfig)
        if int(self.probe_update_start) < 0:
            raise ConfigError(
                f"{self.name}.probe_update_start = {self.probe_update_start} must be >= 0"
            )


def check_pie_steps(owner: str, rule: str, alpha: float, beta: float) -> None:
    """Raise ``ConfigError`` unless (alpha, beta) lie in the ranges of ``rule``.

    ePIE: both in (0, 2) (steps relative to ``max |P|^2``); rPIE: ``alpha`` in (0, 1] (the
    regulariser's weight), ``beta`` in (0, 100].
    """
    if rule not in PIE_RULES:
        raise ConfigError(f"{owner}: PIE rule {rule!r}; choose epie or rpie")
    if rule == "epie":
        check_range(owner, "alpha", alpha, 0.0, 2.0, hi_open=True)
        check_range(owner, "beta", beta, 0.0, 2.0, hi_open=True)
    else:
        check_range(owner, "alpha", alpha, 0.0, 1.0)
        check_range(owner, "beta", beta, 0.0, 100.0)


@dataclass
class PieConfig(PieFamilyConfig):
    """ePIE/rPIE step sizes; ``pie_rule`` says which rule reads them (ePIE unless overridden)."""

    alpha: float = 0.25
    beta: float = 0.25

    @property
    def pie_rule(self) -> str:
        """``epie`` or ``rpie``: the per-position update rule (``ptyframe.engines.rules``)."""
        return "epie"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_pie_steps(self.name, self.pie_rule, self.alpha, self.beta)


@dataclass
class DenoiseSchedule:
    """PINE's denoising step (eq. 20): strength ``rho`` in [0, 1/2) and its schedule."""

    rho: float = 0.0
    denoise_every: int = 1
    denoise_start: int = 0

    def __post_init__(self) -> None:
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:  # the engine config this schedule is mixed into
            parent()
        owner = str(getattr(self, "name", "engine"))
        check_range(owner, "rho", self.rho, 0.0, 0.5, lo_open=False, hi_open=True)
        if int(self.denoise_every) < 1 or int(self.denoise_start) < 0:
            raise ConfigError(
                f"{owner}.denoise_every = {self.denoise_every} must be >= 1 and "
                f"denoise_start = {self.denoise_start} >= 0"
            )

    def prior_config(self) -> DenoiseStepConfig:
        """Return the denoising step's config (the registered ``prior_step`` ``denoise``)."""
        return DenoiseStepConfig(rho=self.rho, every=self.denoise_every, start=self.denoise_start)


@runtime_checkable
class SchedulesPrior(Protocol):
    """An engine config that schedules PINE's denoising step (``DenoiseSchedule``, RAAR's)."""

    def prior_config(self) -> DenoiseStepConfig: ...


@dataclass
class MinibatchConfig(PieFamilyConfig):
    """What the minibatch engines share: the groups and the epoch's momentum."""

    #: Positions per group (at most, for ``sparse``).
    batch_size: int = 16
    #: How positions are grouped: random, compact or sparse (``ptyframe.engines.minibatch``).
    batching: str = "sparse"
    #: Momentum on each epoch's change (0 = none).
    momentum: float = 0.0
    #: Friction of the momentum's velocity.
    friction: float = 0.9
