"""Record ``validation_error``: the data error of the held-out patterns (no truth needed).

With ``data.validation_fraction > 0`` the dataset holds some tiles out of every update
(``ptyframe.data.holdout``); this callback scores the current object and probe on them
(``ptyframe.metrics.validation.ValidationSet``, far-field model) every ``metrics.every``
epochs and after the last, into the epoch's row (``recon.h5`` history, ``ptyframe report``,
and the return value of the Hydra task that Optuna minimises). It runs on every rank (the
whole state is a collective gather when the object is split) and computes on the ranks
that hold it.
"""

from __future__ import annotations

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.config import MetricsConfig
from ptyframe.data.holdout import held_out_of
from ptyframe.engines.base import EpochReport
from ptyframe.metrics.validation import ValidationSet


class ValidationErrorCallback(Callback):
    """Add ``validation_error`` to the row every ``metrics.every`` epochs and after the last.

    A no-op when the dataset holds no tiles out (``data.validation_fraction = 0``).
    """

    order = 12  # after the truth metrics, before the guard and the history

    def __init__(self, config: MetricsConfig | None = None) -> None:
        self.config = config or MetricsConfig()
        self.validation: ValidationSet | None = None

    def setup(self, run: RunContext) -> None:
        held = held_out_of(run.dataset)
        if held is None:
            return
        dtype = run.measurements[0].real_dtype  # the run's real dtype (loaded before)
        device = run.context.device  # the run's, also when the patterns stay on the host
        self.validation = ValidationSet(held, device, dtype)

    def on_epoch_end(self, run: RunContext, report: EpochReport) -> None:
        every = int(self.config.every)
        due = run.is_last_epoch or (every and (run.epoch + 1) % every == 0)
        if self.validation is None or not due:
            return
        whole = run.whole()  # collective on split ranks: every rank asks
        if whole is not None:
            run.values["validation_error"] = self.validation.error(whole)
