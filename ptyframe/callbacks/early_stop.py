"""End a run early when its data error has stopped falling (an optional callback)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.engines.base import EpochReport
from ptyframe.errors import ConfigError

log = logging.getLogger("ptyframe")


@dataclass
class EarlyStopConfig:
    """Stop when the data error fell by less than ``min_fall`` (relative) over ``patience``."""

    name: str = "early_stop"
    #: epochs over which the fall is measured
    patience: int = 20
    #: the relative fall ``(E_{e-patience} - E_e) / E_{e-patience}`` below which the run ends
    min_fall: float = 0.001
    #: never stop before this many epochs
    min_epochs: int = 20

    def __post_init__(self) -> None:
        if int(self.patience) < 1 or int(self.min_epochs) < 0:
            raise ConfigError("early_stop.patience must be >= 1 and min_epochs >= 0")
        if not 0.0 <= float(self.min_fall) < 1.0:
            raise ConfigError(f"early_stop.min_fall = {self.min_fall} must lie in [0, 1)")


class EarlyStop(Callback):
    """End the run (status ``finished``) once ``E`` stopped falling.

    With ``E_e`` the data error after epoch ``e``: stop after epoch ``e >= min_epochs - 1``
    when ``(E_{e-p} - E_e) / E_{e-p} < min_fall``, ``p = patience``. The decision uses the
    globally reduced data error, so every rank of an MPI run stops at the same epoch. The
    outputs are then written as for any finished run (the metrics of the last epoch too).
    """

    #: before the metrics, so the epoch it ends on is measured and recorded as the last
    order = 5

    def __init__(self, config: EarlyStopConfig | None = None, context: object = None) -> None:
        self.config = config or EarlyStopConfig()

    def on_epoch_end(self, run: RunContext, report: EpochReport) -> None:
        cfg = self.config
        errors = [*run.history.columns.get("data_error", []), report.data_error]
        p = int(cfg.patience)
        if run.epoch + 1 < max(int(cfg.min_epochs), p + 1) or len(errors) <= p:
            return
        before, now = errors[-1 - p], errors[-1]
        if before > 0 and (before - now) / before < float(cfg.min_fall):
            if run.distribution.is_root:
                log.info(
                    "early stop after epoch %d: the data error fell %.3g %% over %d epochs",
                    run.epoch + 1,
                    100 * (before - now) / before,
                    p,
                )
            run.end_epoch = run.epoch + 1
