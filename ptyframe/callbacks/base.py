"""What a run is while it runs (``RunContext``) and the hooks a callback may implement.

A run calls the hooks of every callback in ``order`` (lower first)::

    setup(run)            measurements loaded, no state yet
    on_run_start(run)     the starting state exists (whole, before it is split over ranks)
    on_prepared(run)      the engine is prepared on this rank's state
    on_epoch_end(run, report)     after each ``engine.step``; ``run.values`` is the row
    on_exception(run, exc)        once, when anything raised (status already set)
    on_run_end(run, status)       always last: finished, interrupted, diverged or failed

Callbacks run on every rank of an MPI run: ``run.whole()`` is collective where the object is
split over ranks, so a callback that needs it calls it on every rank; only ``run.writer``
writes files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ptyframe.engines.base import Engine, EpochReport
from ptyframe.io.results import History
from ptyframe.state import ReconstructionState

if TYPE_CHECKING:
    from ptyframe.config import ReconstructConfig
    from ptyframe.data.dataset import PtychoDataset
    from ptyframe.data.measurements import Measurements
    from ptyframe.distributed.base import Distribution
    from ptyframe.metrics.truth import TruthMetrics
    from ptyframe.registry import BuildContext, Registry


class Callback:
    """Base class: every hook does nothing; override the ones a concern needs."""

    #: Hooks run in increasing ``order``; extra callbacks default to 50 (after the history).
    order: int = 50

    def setup(self, run: RunContext) -> None:
        """Measurements are loaded (``run.measurements``); no state yet."""

    def on_run_start(self, run: RunContext) -> None:
        """The starting state exists (``run.state``, whole); the engine is not prepared."""

    def on_prepared(self, run: RunContext) -> None:
        """The engine is prepared on this rank's state (a window of it when split)."""

    def on_epoch_end(self, run: RunContext, report: EpochReport) -> None:
        """Epoch ``run.epoch`` is done; add to ``run.values`` or act on the state."""

    def on_exception(self, run: RunContext, exc: BaseException) -> None:
        """The run raised ``exc``; ``run.status`` says how it ends."""

    def on_run_end(self, run: RunContext, status: str) -> None:
        """The run ends with ``status``; called after a finished loop or ``on_exception``."""


@dataclass
class RunContext:
    """The run's parts and its progress, shared by the loop and the callbacks."""

    cfg: ReconstructConfig
    registry: Registry
    context: BuildContext
    distribution: Distribution
    engine: Engine
    dataset: PtychoDataset
    out_dir: Path
    #: files are written at all (``run(write=...)``); ``writer``: and by this rank
    write: bool = True
    config_yaml: str = ""
    fingerprint: str = ""
    #: this rank's patterns: one ``Measurements`` per angle the engine reconstructs
    measurements: list[Measurements] = field(default_factory=list)
    state: ReconstructionState | None = None
    history: History = field(default_factory=History)
    #: the epoch now running (during ``on_epoch_end``: the one just done, 0-based)
    epoch: int = 0
    #: the loop runs while ``epoch < end_epoch``; a callback may move it
    end_epoch: int = 0
    status: str = "running"
    values: dict[str, float] = field(default_factory=dict)
    #: extra attributes for ``recon.h5`` (noise floor, ...)
    attrs: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    #: the ground-truth metrics (``TruthMetrics``), shared by metrics and outputs
    truth: TruthMetrics | None = None
    #: False after an un-agreed stop on split ranks: nothing may be gathered any more
    synchronized: bool = True
    _whole: tuple[int, ReconstructionState | None] | None = None
    _version: int = 0

    @property
    def writer(self) -> bool:
        return bool(self.write and self.distribution.is_root)

    @property
    def is_last_epoch(self) -> bool:
        return self.epoch >= self.end_epoch - 1

    @property
    def windowed(self) -> bool:
        """The object is split over ranks (each holds the rows its tiles touch)."""
        return not self.distribution.holds_whole_state

    def state_changed(self) -> None:
        """Forget the cached whole state (after a step, a restore or a replacement)."""
        self._version += 1
        self._whole = None

    def whole(self) -> ReconstructionState | None:
        """Return the whole state: ``state`` itself, or gathered once per change (collective).

        On split ranks the root gets the gathered state and the others None; after an
        un-agreed stop (``synchronized`` False) nothing can be gathered and it returns None.
        """
        assert self.state is not None
        if not self.windowed:
            return self.state
        if not self.synchronized:
            return None
        if self._whole is None or self._whole[0] != self._version:
            self._whole = (self._version, self.distribution.gather_state(self.state))
        return self._whole[1]

    def estimate(self, state: ReconstructionState) -> np.ndarray:
        """Return the 2-D object the metrics compare (``Engine.projected_object``)."""
        return np.asarray(self.engine.projected_object(state))

    def engine_state(self) -> dict[str, Any]:
        """Return the engine state to checkpoint (collective when the object is split).

        On object windows each rank's engine holds state for its own rows (e.g. Adam moments
        of its window): the root gets every rank's state with the rank layout, to give each
        one back on resume.
        """
        if not self.windowed or not self.synchronized:
            return self.engine.state_dict()
        parts = self.distribution.gather_object(self.engine.state_dict())
        return {PER_RANK: parts, "layout": self.distribution.layout()}


#: Key of a checkpoint's engine state that holds one state per rank (object windows).
PER_RANK = "_per_rank_engine_states"
