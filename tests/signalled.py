"""Start a ``ptyframe`` command, signal it once it is inside its epoch loop, collect its output.

Fixed sleeps fail on a loaded machine: 8 s may not even cover the imports, and a signal that
arrives before the loop installs its handlers kills the process instead of stopping the run.
Here the signal is sent only after the run has logged ``epoch K/N`` (``progress_every_s=0``
prints one plain line per epoch when the output is not a terminal), a reader thread drains
the pipe the whole time (so the child never blocks on a full pipe), and every wait has a
generous deadline instead of a fixed pause.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from ptyframe.callbacks.base import Callback


def reconstruct_cmd(data: Path | str, epochs: int, *extra: str) -> list[str]:
    """Return a quiet ``ptyframe reconstruct`` of ePIE on ``data`` (no images, no metrics)."""
    head = [sys.executable, "-m", "ptyframe.cli", "reconstruct", f"data.path={data}"]
    return [
        *head,
        "engine=epie",
        f"engine.epochs={epochs}",
        "engine.alpha=0.5",
        "metrics.every=0",
        "output.images=false",
        *extra,
    ]


class StopAfter(Callback):
    """Interrupt an in-process run after epoch ``n`` (as Ctrl-C would)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_epoch_end(self, run, report) -> None:
        if report.epoch + 1 == self.n:
            raise KeyboardInterrupt


#: The progress line of one epoch: ``epoch 3/40  data error ...``.
EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+)\s+data error")


@dataclass
class Signalled:
    """What a signalled run did: exit code, all its output, the epoch logged before the signal."""

    returncode: int
    output: str
    epoch_at_signal: int


def run_and_signal(
    cmd: list[str],
    sig: int = signal.SIGINT,
    at_epoch: int = 1,
    cwd: str | Path | None = None,
    wait_s: float = 120.0,
    exit_s: float = 300.0,
) -> Signalled:
    """Run ``cmd``; send ``sig`` once (after it logged epoch ``at_epoch``); return the result.

    Raises ``AssertionError`` (with the output so far) if the run ends before it logs that
    epoch, or logs nothing within ``wait_s`` seconds; ``exit_s`` bounds the wait for its exit.
    """
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: list[str] = []
    reached = threading.Event()
    seen = [0]

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            m = EPOCH_LINE.search(line)
            if m and not reached.is_set():
                seen[0] = int(m.group(1))
                if seen[0] >= at_epoch:
                    reached.set()
        reached.set()  # end of output: let the waiter look at why

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        reached.wait(wait_s)
        ended = proc.poll()
        if ended is not None or seen[0] < at_epoch:
            proc.kill()
            proc.wait(exit_s)
            reader.join(exit_s)
            raise AssertionError(
                f"not signalled: wanted epoch {at_epoch} within {wait_s:.0f} s, the run logged "
                f"epoch {seen[0]} (exit code then: {ended}):\n{''.join(lines[-30:])}"
            )
        proc.send_signal(sig)
        proc.wait(exit_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(exit_s)
    return Signalled(proc.returncode, "".join(lines), seen[0])
