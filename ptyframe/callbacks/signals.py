"""SIGINT/SIGTERM stop the run with its state saved; on MPI every rank stops at one epoch.

A signal that arrives while a log record is being written (between the console and the file
handler of one record, say) does not cut the record off: it waits until the next epoch end
(``StopRequest.check``), so every line a run printed is in its ``cli.log`` too. The stopped
run's ``KeyboardInterrupt`` carries an ``Interruption`` (``INTERRUPTION_ATTR``): the epoch it
reached and where it is saved, which the console script writes to ``cli.log`` before it exits
(``ptyframe.cli``).

While the run's end is written (from its last epoch's end, or from the stop on), the first
further signal is held: a second Ctrl-C cannot cut off the saving of ``recon.h5`` (it is
logged after; a third stops at once).

The signal is kept (``Signalled.signum``, ``Interruption.signum``): the console script exits
with ``128 + signum`` as a shell reports a process ended by it, 130 for Ctrl-C (SIGINT) and
143 for a batch system's SIGTERM (``exit_code``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.data.follow import GrowingDataset
from ptyframe.engines.base import EpochReport

log = logging.getLogger("ptyframe")

#: the attribute of a run's ``KeyboardInterrupt`` that holds its ``Interruption``
INTERRUPTION_ATTR = "ptyframe_interruption"
_LOGGING_DIR = os.path.dirname(logging.__file__) + os.sep


class Signalled(KeyboardInterrupt):
    """The ``KeyboardInterrupt`` a run's signal handler raises; ``signum`` is the signal."""

    def __init__(self, signum: int, text: str = "") -> None:
        super().__init__(text or f"signal {int(signum)}")
        self.signum = int(signum)


class AgreedStop(Signalled):
    """Every rank stops at the same epoch boundary (a signal seen by any rank)."""


@dataclass
class Interruption:
    """Where an interrupted run stopped: epochs done of ``epochs``, and what it saves where.

    ``saves``: this process writes the state (``recon.h5``, ``checkpoint.h5``) into
    ``out_dir``; ``resumable``: ``resume=true`` can continue it (a followed scan cannot);
    ``root``: this process is rank 0 of ``ranks`` (the one that reports it).
    """

    epochs_done: int
    epochs: int
    out_dir: Path
    saves: bool
    resumable: bool
    root: bool = True
    ranks: int = 1
    #: the signal that stopped the run (SIGINT: Ctrl-C, or an interrupt without a signal)
    signum: int = int(signal.SIGINT)

    def saved_files(self) -> list[Path]:
        """Return the result and checkpoint files that exist now (after the run's end)."""
        from ptyframe.callbacks.checkpoint import CHECKPOINT_FILE
        from ptyframe.io.results import RESULT_FILE

        if not self.saves:
            return []
        return [
            p for p in (self.out_dir / RESULT_FILE, self.out_dir / CHECKPOINT_FILE) if p.exists()
        ]


def interruption_of(exc: BaseException | None) -> Interruption | None:
    """Return the ``Interruption`` an interrupted run attached to ``exc`` or to an exception
    it interrupted (a second Ctrl-C while the first one's state was being saved), if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        info = getattr(exc, INTERRUPTION_ATTR, None)
        if isinstance(info, Interruption):
            return info
        seen.add(id(exc))
        exc = exc.__context__
    return None


def signal_of(exc: BaseException | None) -> int:
    """Return the signal that stopped a run with ``exc``: its ``Interruption``'s, else that
    of the oldest ``Signalled`` in its chain (the first signal; a later one interrupted its
    saving), else SIGINT (Python's own Ctrl-C)."""
    info = interruption_of(exc)
    if info is not None:
        return info.signum
    found = int(signal.SIGINT)
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Signalled):
            found = exc.signum
        seen.add(id(exc))
        exc = exc.__context__
    return found


def exit_code(exc: BaseException | None) -> int:
    """Return the exit code of a run stopped by ``exc``: ``128 + signum`` (130 for Ctrl-C,
    143 for SIGTERM), as a shell reports a process a signal ended."""
    return 128 + signal_of(exc)


def in_logging(frame: Any) -> bool:
    """Return whether ``frame`` or a caller is inside the ``logging`` package (a record is out)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith(_LOGGING_DIR):
            return True
        frame = frame.f_back
    return False


class StopRequest:
    """Turn SIGINT/SIGTERM into a stop of the run with the state saved.

    Batch systems (SLURM, PBS) end a job with SIGTERM before killing it; Ctrl-C sends SIGINT.
    One process: a signal raises ``KeyboardInterrupt`` at once, unless it lands inside a
    ``logging`` call: then it is ``deferred`` and ``check`` raises it after the epoch, so no
    log record reaches the console without reaching ``cli.log``. Several ranks (``agreed``): a
    signal only sets a flag; after each epoch the ranks sum their flags (``sum_scalars``) and
    all raise ``AgreedStop`` together, so the state can be gathered and saved (no rank is left
    inside a collective). A second signal stops at once. A SIGINT that was ignored when the
    run started (a background job of a script) stays ignored. Only the main thread can
    install handlers; elsewhere nothing changes.
    """

    def __init__(self, agreed: bool) -> None:
        self.agreed = agreed
        self.requested = False
        self.deferred = 0  # the signal number of a signal that came inside a log call
        self.signum = 0  # the first signal this process got (0: none)
        self.holding = False  # the run's end is being written: hold the next signal
        self.held: list[int] = []
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = self.signum or int(signum)
        if self.holding:
            self.held.append(signum)
            if len(self.held) == 1:
                return
            raise Signalled(signum)
        if self.agreed and not self.requested:
            self.requested = True
            log.warning("signal %d: stopping after this epoch (again: stop now)", signum)
            return
        if in_logging(frame):  # raising here would cut the record off between handlers
            self.deferred = signum
            return
        raise Signalled(signum)

    def check(self, dist: Any) -> None:
        """Raise ``AgreedStop`` on every rank if any rank was signalled (collective), or the
        ``KeyboardInterrupt`` of a signal that came during a log call.

        The agreed stop's signal is SIGTERM if any rank got one (a batch system's), else
        SIGINT, so every rank exits with the same code.
        """
        if self.agreed:
            asked, terms = dist.sum_scalars(
                float(self.requested), float(self.signum == signal.SIGTERM)
            )
            if asked > 0:
                raise AgreedStop(signal.SIGTERM if terms > 0 else signal.SIGINT, "stop requested")
        if self.deferred:
            raise Signalled(self.deferred)

    def uninstall(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}


class SignalsCallback(Callback):
    """Install ``StopRequest`` for the run; check it after every epoch but the last.

    After the last epoch, or once the run stops, signals are held until every other
    callback's ``on_run_end`` (the saving) is done: this one comes last (order 95).

    An un-agreed stop (a second signal) on split ranks leaves ranks at different points, some
    inside a collective: gathering the windows could hang, so the run is marked
    ``synchronized = False`` and nothing beyond the last checkpoint is saved.
    """

    order = 95

    def __init__(self) -> None:
        self.stop: StopRequest | None = None

    def setup(self, run: RunContext) -> None:
        self.stop = StopRequest(agreed=run.distribution.size > 1)

    def on_epoch_end(self, run: RunContext, report: EpochReport) -> None:
        if self.stop is None:
            return
        if run.is_last_epoch:
            self.stop.holding = True  # the outputs come next
        else:
            self.stop.check(run.distribution)

    def on_exception(self, run: RunContext, exc: BaseException) -> None:
        if self.stop is not None:
            self.stop.holding = True  # the last good state is saved next
        if not isinstance(exc, KeyboardInterrupt):
            return
        agreed = isinstance(exc, AgreedStop)
        saves = bool(run.writer)
        if run.distribution.size > 1 and not agreed:
            run.synchronized = False
            if run.windowed:
                saves = False
                log.error(
                    "interrupted: the object is split over ranks (%s), nothing saved; use "
                    "output.checkpoint_every to keep progress",
                    getattr(run.distribution, "mode", type(run.distribution).__name__),
                )
        follow = isinstance(run.dataset, GrowingDataset)  # as FollowCallback decides it
        dist = run.distribution
        info = Interruption(
            len(run.history.epochs),
            int(run.end_epoch),
            Path(run.out_dir),
            saves,
            not follow,
            bool(dist.is_root),
            int(dist.size),
            signal_of(exc),
        )
        try:
            setattr(exc, INTERRUPTION_ATTR, info)
        except AttributeError:  # an exception type without a __dict__: the CLI says less
            pass

    def on_run_end(self, run: RunContext, status: str) -> None:
        if self.stop is not None:
            self.stop.uninstall()
            if self.stop.held:
                log.warning(
                    "signal %d came while the run's end (status %s) was saved: held until it "
                    "was written",
                    self.stop.held[0],
                    status,
                )
            self.stop = None
