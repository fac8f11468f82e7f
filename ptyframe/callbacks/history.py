"""One row of values per epoch: the report's, the metrics' and any callback's before it."""

from __future__ import annotations

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.engines.base import EpochReport


class HistoryCallback(Callback):
    """Append ``run.values`` to ``run.history`` under ``run.epoch``.

    Runs after the metrics and the guard (an epoch that diverged is not recorded) and before
    the callbacks that show or save the history.
    """

    order = 30

    def on_epoch_end(self, run: RunContext, report: EpochReport) -> None:
        run.history.append(run.epoch, run.values)
