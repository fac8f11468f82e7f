"""Define what an engine is: something that advances a reconstruction one epoch at a time.

Engines never open files, never print and never import mpi4py. The runner hands an engine
the measurements, the state (which the engine updates in place) and a ``Distribution``;
the engine returns one ``EpochReport`` per epoch. The random visiting order of epoch ``e``
depends only on (seed, e), so a resumed run repeats exactly what an uninterrupted one does.

What an engine can do is declared, not discovered: ``Engine.capabilities`` (a
``Capabilities``) says which nuisances of an experiment it corrects, which propagators it
runs and whether it takes PINE's denoising step; the runner and the callbacks read these
typed attributes and never probe an engine with ``getattr``. The fast engines (the PIE
family, minibatch PIE, LSQML, RAAR) share one epoch frame, ``ptyframe.engines.frame``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from ptyframe.distributed.base import Distribution, SingleProcess
from ptyframe.engines.checks import check_range as check_range  # engines import it from here
from ptyframe.errors import ConfigError

if TYPE_CHECKING:
    from ptyframe.data.dataset import PtychoDataset
    from ptyframe.data.feed import PatternData
    from ptyframe.data.measurements import Measurements
    from ptyframe.engines.config import EngineConfig
    from ptyframe.registry import BuildContext
    from ptyframe.state import ReconstructionState


@dataclass
class EpochReport:
    """What one epoch did.

    ``data_error`` is the PINE reference code's normalised amplitude error over measured
    pixels, ``sum | |F psi| - sqrt(I) | / sum sqrt(I)``, from the exit waves *before* each
    position's update (for autodiff engines: the loss-consistent equivalent, documented there).
    """

    epoch: int
    data_error: float
    seconds: float
    scalars: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Capabilities:
    """What an engine does beyond fitting one object and one probe to the patterns.

    Declared once per engine class; the frame switches a capability on only for engines that
    declare it, and a run asking for one the engine lacks stops with a ``ConfigError``.
    """

    #: Refines the scan positions (per-position corrections and a global scan transform).
    positions: bool = False
    #: Lets the probe vary from position to position (orthogonal probe relaxation).
    probe_variation: bool = False
    #: Refines a flux scalar per pattern.
    flux: bool = False
    #: The propagators from the exit wave to the detector it runs (``farfield``, ...).
    propagators: tuple[str, ...] = ("farfield",)
    #: Reconstructs an object of several slices (multislice).
    slices: bool = False
    #: Takes PINE's denoising step (``prior``): ``after_epoch``, ``in_sweep`` or ``none``.
    prior: str = "none"
    #: Its sweep runs fastest on one torch thread (per-position loops on small arrays).
    single_thread: bool = False
    #: Backends its sweep runs on (``ptyframe.engines.backend``).
    backends: tuple[str, ...] = ("torch",)
    #: The data it reconstructs: ``ptychography`` (many overlapping patterns) or
    #: ``fullfield`` (one pattern of an isolated object, full-field CDI).
    data: str = "ptychography"
    #: It reads its patterns through the run's pattern data (``ptyframe.data.feed``, a
    #: block at a time), so they may stay in their stored dtype or stream from the file
    #: (``data.stream``); engines that hold every pattern's exit wave or read the whole
    #: amplitude array (RAAR, HIO) do not.
    streams: bool = False


class PriorStep(Protocol):
    """The denoising step an engine is built with (``ptyframe.engines.prior.DenoiseStep``)."""

    def active(self, epoch: int) -> bool: ...

    def apply(self, state: ReconstructionState, epoch: int) -> float: ...

    def mix(self, obj: Any) -> None: ...

    def observe(self, measurements: Any, distribution: Any | None = None) -> None: ...

    def scalars(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def visiting_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """Return the random permutation of ``range(n)`` for ``epoch`` (depends on seed, epoch)."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def check_prior(config: Any, prior: PriorStep | None) -> None:
    """Raise ``ConfigError`` if ``config.rho > 0`` but no denoising step was given.

    Without it the engine would silently run without its prior (PINE as plain ePIE).
    """
    rho = float(getattr(config, "rho", 0.0) or 0.0)
    if rho > 0 and prior is None:
        name = getattr(config, "name", "engine")
        raise ConfigError(
            f"{name}.rho = {rho} needs the denoising step: build the engine with "
            "ptyframe.compose.build_engine (it builds the step with the run's denoiser), or "
            "pass prior=DenoiseStep(config.prior_config(), denoiser)"
        )


class Engine(ABC):
    """A reconstruction algorithm driven epoch by epoch.

    An engine gets what it is built with as constructor arguments (its config, then its
    collaborators: ``physics``, ``loss``, ``regularizers``, ``prior``), given by
    ``ptyframe.compose.build_engine`` from the run config, or by hand.
    """

    #: The engine's typed config (a dataclass extending ``ptyframe.engines.config``'s
    #: ``EngineConfig``; each engine narrows it to its own class).
    config: EngineConfig
    #: The denoising step run after each epoch, or None.
    prior: PriorStep | None = None
    #: What the engine can do (see ``Capabilities``).
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: The run prepares it with one ``Measurements`` per angle (``prepare_angles``).
    wants_all_angles: bool = False

    def __init__(self, context: BuildContext | None = None) -> None:
        """``context``: the run's build context (``ptyframe.registry.BuildContext``), which the
        registry gives an engine whose constructor names it; its ``deterministic`` is the
        run's switch (nothing chosen by timing changes the arithmetic)."""
        #: The patterns: a pattern source or float amplitudes for an engine that streams
        #: (``Capabilities.streams``), float amplitudes (``Measurements``) for the others.
        self.measurements: PatternData | None = None
        self.state: ReconstructionState | None = None
        self.distribution: Distribution = SingleProcess()
        self.seed: int = 0
        #: The run's determinism switch (``ReconstructConfig.deterministic``).
        self.deterministic: bool = True if context is None else bool(context.deterministic)

    @property
    def epochs(self) -> int:
        return int(self.config.epochs)

    @property
    def name(self) -> str:
        """The registered name of the engine (its config's ``name``)."""
        return str(self.config.name)

    @property
    def prefers_single_thread(self) -> bool:
        """Whether the runner should give the whole run one torch thread (no ``threads`` set).

        True for engines whose sweep runs fastest on one thread and that run no denoiser (a
        denoiser's convolutions use every core; the frame then limits only the sweep).
        """
        return self.capabilities.single_thread and self.prior is None

    def describe(self) -> dict[str, str]:
        """Return what ``recon.h5`` records about how the engine ran (backend, FFT, ...)."""
        return {}

    def projected_object(self, state: ReconstructionState) -> np.ndarray:
        """Return the 2-D object the metrics compare: the product of the slices."""
        obj = state.object.detach().cpu().numpy()
        return np.asarray(np.prod(obj, axis=0)) if obj.shape[0] > 1 else obj[0]

    def init_state(self, state: ReconstructionState, dataset: PtychoDataset) -> ReconstructionState:
        """Return the starting state for this engine (default: the runner's state unchanged).

        Engines whose unknowns differ from one 2-D slice (multislice, 3-D tomography) reshape
        the runner's default state here; ``dataset`` is the ``PtychoDataset``.
        """
        return state

    def prepare(
        self,
        measurements: PatternData,
        state: ReconstructionState,
        distribution: Distribution | None = None,
        seed: int = 0,
    ) -> None:
        """Attach data and state; precompute what every epoch needs."""
        self.measurements = measurements
        self.state = state
        self.distribution = distribution or SingleProcess()
        cfg_seed = self.config.seed
        self.seed = int(seed if cfg_seed is None else cfg_seed)
        if self.prior is not None:
            self.prior.observe(measurements, self.distribution)  # e.g. the dose, for cpl_auto

    def prepare_angles(
        self,
        measurements: list[Measurements],
        state: ReconstructionState,
        distribution: Distribution | None = None,
        seed: int = 0,
    ) -> None:
        """Attach one ``Measurements`` per angle (engines with ``wants_all_angles``).

        The default prepares on the first angle's patterns; a multi-angle engine overrides it.
        """
        self.prepare(measurements[0], state, distribution, seed)

    def add_measurements(self, measurements: PatternData, state: ReconstructionState) -> None:
        """Take a grown set of patterns (a scan still being written: ``data.follow=true``).

        ``measurements`` holds the tiles so far then the new ones, ``state.positions_px`` has
        grown with them. The default prepares again (the PIE family: per-tile corners and the
        error normaliser; minibatch and autodiff engines rebuild their batches, parameters
        and optimizers, so momenta restart from zero).
        """
        self.prepare(measurements, state, self.distribution, self.seed)

    @abstractmethod
    def step(self, epoch: int) -> EpochReport:
        """Run epoch ``epoch`` (0-based) and report on it."""

    def iterate(self, start_epoch: int = 0) -> Iterator[EpochReport]:
        """Yield one report per epoch from ``start_epoch`` to ``config.epochs``."""
        for epoch in range(start_epoch, self.epochs):
            yield self.step(epoch)

    def apply_prior(self, report: EpochReport) -> EpochReport:
        """Run the prior step after epoch ``report.epoch`` if it is due; time it in ``report``.

        ``O <- (1 - rho) O + rho D(O)`` (PINE, Yamada et al. 2024, eq. 20) on the whole
        object; the seconds are added to the epoch's and kept as ``denoise_seconds``.
        """
        if self.prior is None:
            return report
        assert self.state is not None
        t0 = time.perf_counter()
        spent = self.prior.apply(self.state, report.epoch)
        report.seconds += time.perf_counter() - t0
        report.scalars["denoise_seconds"] = spent
        report.scalars.update(self.prior.scalars())
        return report

    def state_dict(self) -> dict[str, Any]:
        """Return engine-internal state beyond the unknowns (optimizer moments, ...).

        This base returns the prior's state (a denoiser's frozen normalisation) if any.
        """
        return {} if self.prior is None else {"prior": self.prior.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        if self.prior is not None:
            self.prior.load_state_dict(state.get("prior", {}))
