"""A callback that writes ``snapshots/object_phase_EEEE.png`` every ``every`` epochs.

Added to a run with no change to ptyframe::

    ptyframe reconstruct data.path=F +callback@callbacks.snap=object_snapshots \
        callbacks.snap.every=5
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptyframe import hookimpl
from ptyframe.callbacks.base import Callback


@dataclass
class SnapshotConfig:
    """Write the object's phase as a PNG every ``every`` epochs."""

    name: str = "object_snapshots"
    every: int = 10
    folder: str = "snapshots"


class ObjectSnapshots(Callback):
    """Save the phase of the (whole) object every ``every`` epochs, on the writing rank."""

    def __init__(self, config: SnapshotConfig, context: object = None) -> None:
        self.config = config

    def on_epoch_end(self, run, report) -> None:
        if (run.epoch + 1) % int(self.config.every):
            return
        whole = run.whole()  # collective where the object is split: every rank asks
        if not run.writer or whole is None:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        folder = run.out_dir / self.config.folder
        folder.mkdir(parents=True, exist_ok=True)
        phase = np.angle(run.estimate(whole))
        plt.imsave(folder / f"object_phase_{run.epoch + 1:04d}.png", phase, cmap="viridis")


@hookimpl
def ptyframe_register(registry) -> None:
    registry.add("callback", "object_snapshots", ObjectSnapshots, SnapshotConfig)
