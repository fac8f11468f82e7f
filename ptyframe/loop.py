"""The run loop: ``engine.step``, then the callbacks; one path for every exception.

The loop only coordinates (as deepinv's fixed-point loop and Lightning's fit loop do): what
is measured, kept, shown, saved or stopped is decided by the callbacks
(``ptyframe.callbacks``), so a new per-epoch behaviour is a new callback, not an edit here.
"""

from __future__ import annotations

from collections.abc import Sequence

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.errors import DivergenceError, InputLostError


def status_of(exc: BaseException) -> str:
    """Return how a run that raised ``exc`` ends: diverged, interrupted or failed.

    Data lost under a running sweep (``InputLostError``: a streamed file truncated) ends it
    as an interruption does: the last good state is kept and saved, and it can be resumed.
    """
    if isinstance(exc, DivergenceError):
        return "diverged"
    if isinstance(exc, (KeyboardInterrupt, InputLostError)):
        return "interrupted"
    return "failed"


def ordered(callbacks: Sequence[Callback]) -> list[Callback]:
    """Return ``callbacks`` sorted by their ``order`` (stable: equal orders keep theirs)."""
    return sorted(callbacks, key=lambda cb: cb.order)


def run_loop(run: RunContext, callbacks: Sequence[Callback]) -> str:
    """Run epochs ``run.epoch .. run.end_epoch - 1``; return the final status.

    After each ``engine.step(epoch)`` the row ``run.values`` starts with the report's data
    error, time and scalars, and every callback's ``on_epoch_end`` runs (metrics, guard,
    history, progress, checkpoint, signals, ...). Whatever raises (a callback's
    ``DivergenceError``, Ctrl-C, a bug) sets ``run.status``, calls every ``on_exception``
    then every ``on_run_end`` and re-raises; a finished loop calls ``on_run_end("finished")``.
    """
    cbs = ordered(callbacks)
    try:
        while run.epoch < run.end_epoch:
            report = run.engine.step(run.epoch)
            run.state_changed()
            run.values = {
                "data_error": report.data_error,
                "seconds": report.seconds,
                **report.scalars,
            }
            for cb in cbs:
                cb.on_epoch_end(run, report)
            run.epoch += 1
    except BaseException as exc:
        end(run, cbs, status_of(exc), exc)
        raise
    end(run, cbs, "finished")
    return run.status


def end(
    run: RunContext,
    callbacks: Sequence[Callback],
    status: str,
    exc: BaseException | None = None,
) -> None:
    """Set ``run.status``; call ``on_exception`` (if ``exc``) then ``on_run_end`` of each."""
    run.status = status
    cbs = ordered(callbacks)
    if exc is not None:
        for cb in cbs:
            cb.on_exception(run, exc)
    for cb in cbs:
        cb.on_run_end(run, status)
