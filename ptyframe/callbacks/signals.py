"""SIGINT/SIGTERM stop the run with its state saved; on MPI every rank stops at one epoch."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.engines.base import EpochReport

log = logging.getLogger("ptyframe")


class AgreedStop(KeyboardInterrupt):
    """Every rank stops at the same epoch boundary (a signal seen by any rank)."""


class StopRequest:
    """Turn SIGINT/SIGTERM into a stop of the run with the state saved.

    Batch systems (SLURM, PBS) end a job with SIGTERM before killing it; Ctrl-C sends SIGINT.
    One process: SIGTERM raises ``KeyboardInterrupt`` at once, like Ctrl-C. Several ranks
    (``agreed``): a signal only sets a flag; after each epoch the ranks sum their flags
    (``sum_scalars``) and all raise ``AgreedStop`` together, so the state can be gathered and
    saved (no rank is left inside a collective). A second signal stops at once.
    Only the main thread can install handlers; elsewhere nothing changes.
    """

    def __init__(self, agreed: bool) -> None:
        self.agreed = agreed
        self.requested = False
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        signals = (signal.SIGINT, signal.SIGTERM) if agreed else (signal.SIGTERM,)
        for sig in signals:
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.agreed and not self.requested:
            self.requested = True
            log.warning("signal %d: stopping after this epoch (again: stop now)", signum)
            return
        raise KeyboardInterrupt(f"signal {signum}")

    def check(self, dist: Any) -> None:
        """Raise ``AgreedStop`` on every rank if any rank was signalled (collective)."""
        if self.agreed and dist.sum_scalars(float(self.requested))[0] > 0:
            raise AgreedStop("stop requested")

    def uninstall(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}


class SignalsCallback(Callback):
    """Install ``StopRequest`` for the run; check it after every epoch but the last.

    An un-agreed stop (a second signal) on split ranks leaves ranks at different points, some
    inside a collective: gathering the windows could hang, so the run is marked
    ``synchronized = False`` and nothing beyond the last checkpoint is saved.
    """

    order = 70

    def __init__(self) -> None:
        self.stop: StopRequest | None = None

    def setup(self, run: RunContext) -> None:
        self.stop = StopRequest(agreed=run.distribution.size > 1)

    def on_epoch_end(self, run: RunContext, report: EpochReport) -> None:
        if self.stop is not None and not run.is_last_epoch:
            self.stop.check(run.distribution)

    def on_exception(self, run: RunContext, exc: BaseException) -> None:
        agreed = isinstance(exc, AgreedStop)
        if isinstance(exc, KeyboardInterrupt) and run.distribution.size > 1 and not agreed:
            run.synchronized = False
            if run.windowed:
                log.error(
                    "interrupted: the object is split over ranks (%s), nothing saved; use "
                    "output.checkpoint_every to keep progress",
                    getattr(run.distribution, "mode", type(run.distribution).__name__),
                )

    def on_run_end(self, run: RunContext, status: str) -> None:
        if self.stop is not None:
            self.stop.uninstall()
            self.stop = None
