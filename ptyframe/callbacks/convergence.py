"""At the end of a finished run: is it converged, and did it stall above the noise floor?"""

from __future__ import annotations

import logging

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.metrics.noise_floor import check_run
from ptyframe.progress import still_improving

log = logging.getLogger("ptyframe")


class ConvergenceCallback(Callback):
    """Warn ``not converged`` when the data error still fell > 1 % over the last tenth of the
    epochs, and compare the final data error with the Poisson noise floor of the counts
    (``check_run``, collective); record both in ``recon.h5`` (``still_improving``,
    ``noise_floor``, ``noise_floor_ratio``, ``stalled``).
    """

    order = 80

    def on_run_end(self, run: RunContext, status: str) -> None:
        errors = run.history.columns.get("data_error", [])
        fall = still_improving(errors)
        run.attrs["still_improving"] = fall is not None
        if status != "finished":
            return
        if fall is not None and run.distribution.is_root:
            n = max(5, len(run.history.epochs) // 10)
            log.warning(
                "not converged: the data error still fell %.1f %% over the last %d epochs; a "
                "run with more epochs (e.g. engine.epochs=%d) would likely improve the result",
                100 * fall,
                n,
                2 * run.engine.epochs,
            )
        last = run.history.last("data_error")
        run.attrs.update(check_run(run.measurements, run.distribution, last, log))
