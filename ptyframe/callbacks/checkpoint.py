"""Resume from ``checkpoint.h5``; write one every ``output.checkpoint_every`` epochs and on stop.

A checkpoint holds the whole state, the engine's state (per rank on object windows), the
history, the next epoch, the torch and NumPy RNG states and the config fingerprint, so a
resumed run repeats exactly what an uninterrupted one does (tested bit for bit, after
``kill -9`` too: the file is replaced atomically).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ptyframe.callbacks.base import PER_RANK, Callback, RunContext
from ptyframe.engines.base import EpochReport
from ptyframe.errors import ConfigError
from ptyframe.io.checkpoint import load_checkpoint, restore_rng, save_checkpoint
from ptyframe.state import ReconstructionState, complex_dtype

log = logging.getLogger("ptyframe")

CHECKPOINT_FILE = "checkpoint.h5"


class CheckpointCallback(Callback):
    """Resume (``resume=true``), periodic checkpoints, a checkpoint when interrupted."""

    order = 60

    def __init__(self, every: int = 10, resume: bool = False) -> None:
        self.every = int(every)
        self.resume = bool(resume)
        self.pending: Any = None

    @staticmethod
    def path(run: RunContext) -> Path:
        return run.out_dir / CHECKPOINT_FILE

    def on_run_start(self, run: RunContext) -> None:
        """Replace the starting state, history and epoch by the checkpoint's (``resume``)."""
        if not self.resume:
            return
        path = self.path(run)
        ckpt = load_checkpoint(path, str(run.context.device))
        if ckpt.fingerprint != run.fingerprint:
            raise ConfigError(
                f"{path} was written by a run with a different config; resume only with "
                "the same settings (or start a new run in another output.dir)"
            )
        cdt = complex_dtype(run.cfg.dtype)
        s = ckpt.state
        run.state = ReconstructionState(s.object.to(cdt), s.probe.to(cdt), s.positions_px, s.extras)
        run.history, run.epoch = ckpt.history, ckpt.next_epoch
        run.state_changed()
        self.pending = ckpt
        if run.distribution.is_root:
            log.info(
                "resuming from %s: epoch %d of %d (data error %.4g)",
                path,
                run.epoch,
                run.end_epoch,
                run.history.last("data_error") if run.history.epochs else float("nan"),
            )

    def on_prepared(self, run: RunContext) -> None:
        """Give the prepared engine its saved state and put the RNGs back."""
        if self.pending is None:
            return
        saved = local_engine_state(self.pending.engine_state, run, self.path(run))
        run.engine.load_state_dict(saved)
        restore_rng(self.pending.rng)
        self.pending = None

    def on_epoch_end(self, run: RunContext, report: EpochReport) -> None:
        due = self.every and (run.epoch + 1) % self.every == 0 and not run.is_last_epoch
        if run.write and due:
            self.save(run, run.epoch + 1)

    def on_run_end(self, run: RunContext, status: str) -> None:
        path = self.path(run)
        if status == "interrupted" and run.write:
            self.save(run, len(run.history.epochs))
        elif status == "finished" and run.writer and path.exists():
            path.unlink()

    def save(self, run: RunContext, next_epoch: int) -> None:
        """Write the checkpoint (collective on split ranks; the root writes)."""
        whole = run.whole()
        engine_state = run.engine_state()
        if run.writer and whole is not None:
            save_checkpoint(
                self.path(run), whole, engine_state, run.history, next_epoch, run.fingerprint
            )


def local_engine_state(saved: dict[str, Any], run: RunContext, path: Path) -> dict[str, Any]:
    """Return this rank's engine state from a checkpoint (see ``RunContext.engine_state``)."""
    if PER_RANK not in saved:
        return saved
    dist = run.distribution
    parts, layout = saved[PER_RANK], saved.get("layout")
    if dist.holds_whole_state or len(parts) != dist.size or layout != dist.layout():
        raise ConfigError(
            f"{path} was written on object windows by {len(parts)} ranks (rows {layout}); "
            f"resume with the same distribution and rank count (here: {dist.size} ranks, "
            f"rows {dist.layout()})"
        )
    mine: dict[str, Any] = parts[dist.rank]
    return mine
