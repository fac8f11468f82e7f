"""Refresh the run directory's images and ``recon.h5`` while a run goes on (live view).

``LiveOutputs`` writes, at most every ``output.live_every_s`` seconds (at the end of the
first epoch after that much time), ``recon.h5`` with status ``running`` (the object, probe,
positions and history so far; ``ptyframe.io.results.write_result`` writes it to a temporary
name and renames it) and the PNG images (each drawn into a hidden temporary folder beside
them and renamed into place), so a viewer never reads a half-written file. The root decides
when (ranks could disagree on the clock) and writes; ``whole()`` gathers the state.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.data.follow import GrowingDataset

log = logging.getLogger("ptyframe")

RESULT_FILE = "recon.h5"


def _estimate(state: Any) -> np.ndarray:
    obj = state.object.detach().cpu().numpy()
    return np.prod(obj, axis=0) if obj.shape[0] > 1 else obj[0]


def write_live(
    out: Path, state: Any, history: Any, dataset: Any, attrs: dict[str, Any], images: bool
) -> list[Path]:
    """Write ``recon.h5`` (status ``running``) and the images into ``out``, atomically."""
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
    files = [out / RESULT_FILE]
    if images:
        files += _images_atomic(out, state, history, dataset)
    return files


def _images_atomic(out: Path, state: Any, history: Any, dataset: Any) -> list[Path]:
    from ptyframe.io import images
    from ptyframe.metrics.illumination import illumination_map

    tmp = Path(tempfile.mkdtemp(prefix=".live-", dir=out))
    try:
        est = _estimate(state)
        probe = state.probe.detach().cpu().numpy()
        pos = state.positions_px.detach().cpu().numpy()
        pixel_m = float(dataset.geometry.pixel_size_m)
        drawn = images.object_images(est, tmp, pixel_m, illumination_map(probe, pos, est.shape))
        drawn.append(images.probe_image(probe, tmp, pixel_m))
        if history.epochs:
            drawn.append(images.convergence_image(history, tmp))
        done = []
        for p in drawn:
            os.replace(p, out / p.name)  # atomic within one file system
            done.append(out / p.name)
        return done
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
            attrs = {
                "config": run.config_yaml,
                "engine": str(getattr(run.engine.config, "name", "")),
                "data_path": str(getattr(run.dataset, "path", "") or "(in memory)"),
                "data_conventions": json.dumps(getattr(run.dataset, "conventions", {})),
            }
            write_live(Path(run.out_dir), whole, run.history, run.dataset, attrs, self.images)
            self.written.append(
                (int(report.epoch) + 1, time.time(), int(whole.positions_px.shape[0]))
            )
        self.last = time.monotonic()
