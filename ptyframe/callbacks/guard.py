"""The divergence guard: stop on a non-finite state or an exploding error; keep the good state."""

from __future__ import annotations

import math

import torch

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.config import GuardConfig
from ptyframe.engines.base import EpochReport
from ptyframe.errors import DivergenceError
from ptyframe.state import ReconstructionState


class DivergenceGuard(Callback):
    """Raise ``DivergenceError`` when epoch ``e`` makes the state non-finite or its error
    ``E_e > max_error_growth * min_{k<e} E_k``; after every good epoch copy the state into a
    kept one (in place, no second object-sized allocation per epoch), and restore it on any
    stop, so what is saved is the last good state, never a half-updated one.
    """

    order = 20

    def __init__(self, config: GuardConfig | None = None) -> None:
        self.config = config or GuardConfig()
        self.best = math.inf
        self.good: ReconstructionState | None = None

    def on_prepared(self, run: RunContext) -> None:
        assert run.state is not None
        self.good = run.state.clone()
        errors = [e for e in run.history.columns.get("data_error", []) if math.isfinite(e)]
        self.best = min(errors, default=math.inf)  # a resumed run keeps its best error

    def on_epoch_end(self, run: RunContext, report: EpochReport) -> None:
        assert run.state is not None and self.good is not None
        finite = run.state.is_finite()
        if run.windowed:  # every rank must agree, or some would stop and others wait
            finite = run.distribution.sum_scalars(float(not finite))[0] == 0
        check(report, finite, self.best, float(self.config.max_error_growth))
        self.best = min(self.best, report.data_error)
        keep(self.good, run.state)

    def on_exception(self, run: RunContext, exc: BaseException) -> None:
        if run.state is not None and self.good is not None and run.status != "failed":
            restore(run.state, self.good)
            run.state_changed()


def check(report: EpochReport, finite: bool, best: float, growth: float) -> None:
    """Raise ``DivergenceError`` if the epoch of ``report`` diverged (see the class)."""
    err = report.data_error
    if not math.isfinite(err) or not finite:
        raise DivergenceError(
            f"epoch {report.epoch + 1}: the reconstruction became non-finite (NaN/Inf); lower "
            "the step sizes (alpha, beta, learning rates)"
        )
    if math.isfinite(best) and err > growth * best:
        raise DivergenceError(
            f"epoch {report.epoch + 1}: data error {err:.4g} exploded (> {growth:g} x the best "
            f"{best:.4g}); lower the step sizes, or raise guard.max_error_growth"
        )


def keep(good: ReconstructionState, state: ReconstructionState) -> None:
    """Copy ``state`` into ``good`` in place."""
    with torch.no_grad():
        good.object.copy_(state.object)
        good.probe.copy_(state.probe)
        if good.positions_px.shape != state.positions_px.shape:  # patterns joined (follow)
            good.positions_px = state.positions_px.clone()
        else:
            good.positions_px.copy_(state.positions_px)
    good.extras.clear()
    good.extras.update({k: v.clone() for k, v in state.extras.items()})


def restore(state: ReconstructionState, good: ReconstructionState) -> None:
    """Copy ``good`` back into ``state`` in place."""
    with torch.no_grad():
        state.object.copy_(good.object)
        state.probe.copy_(good.probe)
        if state.positions_px.shape == good.positions_px.shape:
            state.positions_px.copy_(good.positions_px)
    for k, v in good.extras.items():
        state.extras[k] = v
