"""Show a run's progress: a bar on a terminal, a plain line every few seconds in a log file.

A progress bar redirected to a file (a batch job's log) writes one carriage-return update per
epoch onto a single line; in a log a person wants lines. ``Progress`` picks by the stream:
on a terminal the ``tqdm`` bar (epoch, data error), elsewhere one line through the
``ptyframe`` logger (so it also reaches Hydra's job log) at the first epoch, every
``interval_s`` seconds and at the last epoch::

    epoch 37/100  data error 0.1234  2.1 epochs/s  about 30 s left
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import numpy as np

log = logging.getLogger("ptyframe")


class Progress:
    """Report epochs ``initial .. total`` (a bar or plain lines; nothing when disabled)."""

    def __init__(
        self,
        total: int,
        initial: int = 0,
        enabled: bool = True,
        interval_s: float = 5.0,
        stream: TextIO | None = None,
    ) -> None:
        self.total, self.done = int(total), int(initial)
        self.enabled = bool(enabled)
        self.interval_s = float(interval_s)
        self.stream = stream if stream is not None else sys.stderr
        self.start_s = self.last_s = time.perf_counter()
        self.first = int(initial)
        self.bar: Any = None
        if self.enabled and _is_terminal(self.stream):
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total,
                initial=self.done,
                desc="epochs",
                unit="epoch",
                dynamic_ncols=True,
                file=self.stream,
            )

    def set_total(self, total: int) -> None:
        """Change the number of epochs (a run that follows a growing file extends it)."""
        if int(total) != self.total:
            self.total = int(total)
            if self.bar is not None:
                self.bar.total = self.total
                self.bar.refresh()

    def update(self, data_error: float) -> None:
        """Count one finished epoch with its ``data_error``."""
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(error=f"{data_error:.4g}")
            self.bar.update(1)
            return
        now = time.perf_counter()
        due = now - self.last_s >= self.interval_s
        if self.done == self.first + 1 or self.done >= self.total or due:
            self.last_s = now
            log.info("%s", self.line(data_error, now))

    def line(self, data_error: float, now: float) -> str:
        """Return the plain progress line for the current count."""
        rate = (self.done - self.first) / max(now - self.start_s, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = f"  about {left:.0f} s left" if self.done < self.total else ""
        return (
            f"epoch {self.done}/{self.total}  data error {data_error:.4g}  {rate:.3g} epochs/s{eta}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


#: Relative fall of the data error over the last tenth of the epochs above which a finished
#: run is reported as still improving.
STILL_IMPROVING = 0.01


def still_improving(errors: list[float] | np.ndarray, min_epochs: int = 5) -> float | None:
    """Return the relative fall of the data error over the last tenth of ``errors``, if large.

    ``(e[-n-1] - e[-1]) / e[-1]`` with ``n = max(min_epochs, len(e) // 10)``; returned when it
    exceeds ``STILL_IMPROVING`` (1 %), else None. A run that ends while its misfit still falls
    has not converged: its images and scores are not yet what the method can give.
    """
    e = np.asarray(errors, dtype=float)
    e = e[np.isfinite(e)]
    n = max(int(min_epochs), len(e) // 10)
    if len(e) <= n or not e[-1] > 0:
        return None
    fall = float((e[-n - 1] - e[-1]) / e[-1])
    return fall if fall > STILL_IMPROVING else None
