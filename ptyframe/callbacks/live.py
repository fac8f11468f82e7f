"""Refresh the run directory's images and ``recon.h5`` while a run goes on (live view).

``LiveOutputs`` writes, at most every ``output.live_every_s`` seconds (at the end of the
first epoch after that much time), ``recon.h5`` with status ``running`` (the object, probe,
positions and history so far; ``ptyframe.io.results.write_result`` writes it to a temporary
name and renames it) and the PNG images (each drawn into a hidden temporary folder beside
them and renamed into place), so a viewer never reads a half-written file. Drawing the PNGs
takes longer than a sweep of a small scan, so a drawer process of its own
(``ptyframe.callbacks.live_draw``) redraws them from every new ``recon.h5`` while the sweeps
go on (a thread would share the interpreter lock with the per-position loop and draw only
when the run ends); the run's end stops it before the final outputs. The root decides when
(ranks could disagree on the clock) and writes; ``whole()`` gathers the state.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.callbacks.outputs import source_attrs
from ptyframe.data.follow import GrowingDataset
from ptyframe.io.results import RESULT_FILE

log = logging.getLogger("ptyframe")


def write_live(out: Path, state: Any, history: Any, dataset: Any, attrs: dict[str, Any]) -> Path:
    """Write ``out/recon.h5`` with status ``running`` (atomically: temp file, rename)."""
    from ptyframe.io.results import write_result

    out.mkdir(parents=True, exist_ok=True)
    attrs = {
        "status": "running",
        "epochs_done": len(history.epochs),
        "n_tiles_used": int(state.positions_px.shape[0]),
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "pixel_size_m": float(dataset.geometry.pixel_size_m),
        **attrs,
    }
    write_result(out / RESULT_FILE, state.numpy(), history, attrs, overwrite=True)
    return out / RESULT_FILE


class LiveOutputs(Callback):
    """Write the live outputs every ``every_s`` seconds (module docstring).

    Active while following a growing file (``data.follow=true``); a no-op otherwise.
    """

    #: after the history (30) and the checkpoint (60), before the final outputs (90)
    order = 85

    def __init__(self, every_s: float = 10.0, images: bool = True) -> None:
        self.active = False
        self.every_s = float(every_s)
        self.images = bool(images)
        self.last = time.monotonic()
        #: ``(epochs done, unix time, tiles used)`` of every live write.
        self.written: list[tuple[int, float, int]] = []
        self.drawer: subprocess.Popen[bytes] | None = None

    def setup(self, run: RunContext) -> None:
        self.active = isinstance(run.dataset, GrowingDataset) and bool(run.write)
        self.last = time.monotonic()

    def on_epoch_end(self, run: RunContext, report: Any) -> None:
        if not self.active:
            return
        dist = run.distribution
        due = time.monotonic() - self.last >= self.every_s if dist.is_root else None
        if dist.size > 1:
            due = bool(dist.broadcast_object(due))
        if not due:
            return
        whole = run.whole()
        if run.writer and whole is not None:
            out = Path(run.out_dir)
            write_live(out, whole, run.history, run.dataset, source_attrs(run))
            if self.images and self.drawer is None:
                self.drawer = _start_drawer(out)
            self.written.append(
                (int(report.epoch) + 1, time.time(), int(whole.positions_px.shape[0]))
            )
        self.last = time.monotonic()

    def on_run_end(self, run: RunContext, status: str) -> None:
        """Stop the drawer (the final outputs then draw every image once more)."""
        if self.drawer is None:
            return
        stop = Path(run.out_dir) / STOP_FILE
        stop.touch()
        try:
            self.drawer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.drawer.kill()
            self.drawer.wait()
        stop.unlink(missing_ok=True)
        self.drawer = None


STOP_FILE = ".live-stop"


def _start_drawer(out: Path) -> subprocess.Popen[bytes]:
    """Start ``ptyframe.callbacks.live_draw`` on ``out`` (stops on ``out/.live-stop``)."""
    (out / STOP_FILE).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "ptyframe.callbacks.live_draw", str(out)]
    cmd += ["--stop", str(out / STOP_FILE), "--parent", str(os.getpid())]
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env)
