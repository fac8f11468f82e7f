"""Show the run's progress: a bar on a terminal, a plain log line every few seconds elsewhere."""

from __future__ import annotations

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.engines.base import EpochReport
from ptyframe.progress import Progress


class ProgressCallback(Callback):
    """Drive ``ptyframe.progress.Progress`` (on the root only) from the epoch reports."""

    order = 40

    def __init__(self, enabled: bool = True, interval_s: float = 5.0) -> None:
        self.enabled = bool(enabled)
        self.interval_s = float(interval_s)
        self.bar: Progress | None = None

    def on_prepared(self, run: RunContext) -> None:
        self.bar = Progress(
            run.end_epoch,
            run.epoch,
            enabled=self.enabled and run.distribution.is_root,
            interval_s=self.interval_s,
        )

    def on_epoch_end(self, run: RunContext, report: EpochReport) -> None:
        if self.bar is not None:
            self.bar.set_total(run.end_epoch)  # a callback may have moved the end
            self.bar.update(report.data_error)

    def on_run_end(self, run: RunContext, status: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
