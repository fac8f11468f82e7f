"""Define what an engine is: something that advances a reconstruction one epoch at a time.

Engines never open files, never print and never import mpi4py. The runner hands an engine
the measurements, the state (which the engine updates in place) and a ``Distribution``;
the engine returns one ``EpochReport`` per epoch. The random visiting order of epoch ``e``
depends only on (seed, e), so a resumed run repeats exactly what an uninterrupted one does.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ptyframe.data.measurements import Measurements
from ptyframe.distributed.base import Distribution, SingleProcess
from ptyframe.errors import ConfigError
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


def visiting_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """Return the random permutation of ``range(n)`` for ``epoch`` (depends on seed, epoch)."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def check_range(
    owner: str,
    name: str,
    value: float,
    lo: float,
    hi: float,
    lo_open: bool = True,
    hi_open: bool = False,
) -> None:
    """Raise ``ConfigError`` unless ``value`` lies in the interval (lo, hi] (bounds as asked)."""
    ok_lo = value > lo if lo_open else value >= lo
    ok_hi = value < hi if hi_open else value <= hi
    if not (ok_lo and ok_hi) or value != value:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ConfigError(
            f"{owner}.{name} = {value} is out of range; it must lie in {left}{lo}, {hi}{right}"
        )


def check_prior(config: Any, prior: Any) -> None:
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

    config: Any
    #: The denoising step run after each epoch (``ptyframe.engines.prior.DenoiseStep``) by
    #: engines that take a ``prior``; None: none.
    prior: Any = None

    def __init__(self) -> None:
        self.measurements: Measurements | None = None
        self.state: ReconstructionState | None = None
        self.distribution: Distribution = SingleProcess()

    @property
    def epochs(self) -> int:
        return int(self.config.epochs)

    def init_state(self, state: ReconstructionState, dataset: Any) -> ReconstructionState:
        """Return the starting state for this engine (default: the runner's state unchanged).

        Engines whose unknowns differ from one 2-D slice (multislice, 3-D tomography) reshape
        the runner's default state here; ``dataset`` is the ``PtychoDataset``.
        """
        return state

    #: If True, ``prepare`` receives a list of ``Measurements`` (one per angle) instead of one.
    wants_all_angles: bool = False

    def prepare(
        self,
        measurements: Measurements,
        state: ReconstructionState,
        distribution: Distribution | None = None,
        seed: int = 0,
    ) -> None:
        """Attach data and state; precompute what every epoch needs."""
        self.measurements = measurements
        self.state = state
        self.distribution = distribution or SingleProcess()
        cfg_seed = getattr(self.config, "seed", None)
        self.seed = int(seed if cfg_seed is None else cfg_seed)
        prior = getattr(self, "prior", None)
        if prior is not None and hasattr(prior, "observe"):
            prior.observe(measurements, self.distribution)  # e.g. the dose, for cpl_auto

    def add_measurements(self, measurements: Measurements, state: ReconstructionState) -> None:
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

    def backend_attrs(self) -> dict[str, str]:
        """Return what this engine's arithmetic runs on (kernels, FFT), for ``recon.h5``.

        This base returns nothing (torch operations on the run's device).
        """
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Return engine-internal state beyond the unknowns (optimizer moments, ...).

        This base returns the prior's state (a denoiser's frozen normalisation) if any.
        """
        return {} if self.prior is None else {"prior": self.prior.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        if self.prior is not None:
            self.prior.load_state_dict(state.get("prior", {}))
