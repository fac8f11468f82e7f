"""Metrics against the dataset's ground truth, every ``metrics.every`` epochs and at the end."""

from __future__ import annotations

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.config import MetricsConfig
from ptyframe.engines.base import EpochReport
from ptyframe.metrics.truth import TruthMetrics as TruthMetrics  # the metrics it reports


class TruthMetricsCallback(Callback):
    """Add the truth metrics to the epoch's row every ``every`` epochs and after the last.

    The metrics themselves are ``run.truth`` (built by the run from ``metrics.names``), so the
    outputs can compute the final FRC curve with the same reference.
    """

    order = 10

    def __init__(self, config: MetricsConfig | None = None) -> None:
        self.config = config or MetricsConfig()

    def on_epoch_end(self, run: RunContext, report: EpochReport) -> None:
        truth = run.truth
        every = int(self.config.every)
        due = run.is_last_epoch or (every and (run.epoch + 1) % every == 0)
        if truth is None or not truth.enabled or not due:
            return
        whole = run.whole()  # collective on split ranks: every rank asks
        if whole is not None:
            run.values.update(truth(run.estimate(whole)))
