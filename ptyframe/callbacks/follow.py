"""Reconstruct while the scan is written: new patterns join the run as they arrive.

``FollowCallback`` (``data.follow=true``) polls the ``GrowingScan`` of the run's
``GrowingDataset`` (``ptyframe.data.follow``) after every epoch. New tiles ``[n_have, n)``
are read, their positions appended to ``state.positions_px``, this rank's share of them
(``Distribution.shard_tiles`` of the new positions) appended to its ``Measurements``, and the
engine takes the grown set (``Engine.add_measurements``); the next sweep covers them. While
the scan runs the loop is kept going (``run.end_epoch = done + 2``, so no epoch counts as
the last one and the end-of-run metrics wait); once the writer sets ``scan_complete`` the
run does ``engine.epochs`` more sweeps over all patterns and finishes as usual. No new
pattern and no ``scan_complete`` for ``data.follow_timeout_s`` ends the run (what it has is
saved; ``follow_timed_out`` and ``scan_complete`` are attributes of ``recon.h5``). The first
poll is in ``on_prepared`` (the engine is prepared on the first patterns, then grows).

How following ended is ``follow_ended`` in ``recon.h5`` and in the log: ``complete`` (the
writer set ``scan_complete``), ``timeout``, ``error`` (a broken file, below), or the run's
status when it stopped while still following (``interrupted``, ``diverged``). The run's status
stays ``finished`` for a timeout or an error (the saved result is a finished reconstruction
of the patterns it had); ``ptyframe reconstruct`` exits nonzero for them
(``ptyframe.cli.FOLLOW_EXIT_CODES``) so a beamline script can tell them from a whole scan.

Tiles that ``ptyframe.data.follow.screen`` skipped (no measured pixel, a position outside the
object) are listed in ``follow_skipped_tiles``. A file that breaks the contract (patterns of
another size, a shrinking scan; ``DataValidationError``) ends the run the same way as the
timeout: the error is logged, the run stops with the patterns it has and is saved, and
``follow_error`` holds the message.

The root polls the file and broadcasts what it saw, so every rank grows at the same epoch.
Distributions that split the object over ranks are refused (their object windows are cut
from the tiles known at the start).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.data.follow import GrowingDataset
from ptyframe.data.measurements import Measurements
from ptyframe.engines.base import EpochReport
from ptyframe.errors import ConfigError, DataValidationError

log = logging.getLogger("ptyframe")


def concat_measurements(old: Measurements, new: Measurements) -> Measurements:
    """Return ``old`` then ``new`` as one ``Measurements`` (``new``'s geometry)."""
    if old.valid is None and new.valid is None:
        valid = None
    else:
        valid = torch.cat(
            [
                m.valid if m.valid is not None else torch.ones_like(m.amplitudes, dtype=torch.bool)
                for m in (old, new)
            ]
        )
    return Measurements(
        torch.cat([old.amplitudes, new.amplitudes]).contiguous(),
        valid,
        np.concatenate([old.indices, new.indices]).astype(np.int64),
        new.geometry,
        old.angle,
    )


class FollowCallback(Callback):
    """Grow the run with the patterns a writer appends; see the module docstring.

    A no-op unless the run's dataset is a ``GrowingDataset`` (``data.follow=true``).
    """

    #: after the guard has kept the epoch's state (20), before the history (30)
    order = 25

    def __init__(self) -> None:
        self.active = False
        self.timeout_s = 60.0  # the followed file's (data.follow_timeout_s), set in setup
        self.complete = False
        self.timed_out = False
        self.error = ""  # a broken file's DataValidationError: following stopped
        self.grown_at: list[tuple[int, int, float]] = []  # (epochs done, n tiles, unix time)

    def ended(self, status: str) -> str:
        """Return how following ended: complete, timeout, error, or the run's ``status``."""
        if self.error:
            return "error"
        if self.timed_out:
            return "timeout"
        return "complete" if self.complete else status

    @staticmethod
    def followed(run: RunContext) -> GrowingDataset:
        """Return the run's dataset, which is growing when this callback is active."""
        ds = run.dataset
        assert isinstance(ds, GrowingDataset), "FollowCallback is active only on a follow run"
        return ds

    def setup(self, run: RunContext) -> None:
        self.active = isinstance(run.dataset, GrowingDataset)
        if not self.active:
            return
        if bool(getattr(run.cfg, "resume", False)):  # a dataset given in code (the config checks)
            raise ConfigError("data.follow=true cannot resume a run; start it again")
        if not run.distribution.holds_whole_state:
            raise ConfigError(
                "data.follow=true works with distributions that keep the whole object on every "
                "rank (single, data-parallel); this one splits the object over ranks"
            )
        if len(run.measurements) != 1:
            raise ConfigError("data.follow=true follows a single-angle scan")
        self.timeout_s = float(self.followed(run).scan.timeout_s)
        self.last_new = time.monotonic()

    def on_prepared(self, run: RunContext) -> None:
        if self.active:
            self._poll(run, int(run.epoch))

    def on_epoch_end(self, run: RunContext, report: EpochReport) -> None:
        if self.active:
            self._poll(run, int(run.epoch) + 1)

    def _poll(self, run: RunContext, done: int) -> None:
        if self.error:
            return
        dist, ds = run.distribution, self.followed(run)
        seen: tuple[int, bool, bool, str] | None = None
        if dist.is_root:
            try:
                a = ds.scan.poll()
            except DataValidationError as exc:
                seen = (0, False, False, str(exc))
            else:
                if a.n > ds.next_tile:
                    self.last_new = time.monotonic()
                stale = time.monotonic() - self.last_new > self.timeout_s
                seen = (a.n, a.complete, stale and not a.complete, "")
        got = dist.broadcast_object(seen)
        assert got is not None  # the root's
        n, complete, stale, error = got
        if not error and n > ds.next_tile:
            try:
                self.grow(run, int(n))
            except DataValidationError as exc:  # every rank reads the same file
                error = str(exc)
            self.grown_at.append((done, int(ds.n_tiles), time.time()))
        if error:
            self.error = error
            run.end_epoch = done
            log.error("%s; ending the run with the %d patterns it has (saved)", error, ds.n_tiles)
            return
        if complete and not self.complete:
            self.complete = True
            run.end_epoch = done + int(run.engine.epochs)
            log.info("scan complete (%d patterns): %d more sweeps", ds.n_tiles, run.engine.epochs)
        elif not self.complete:
            if stale:
                self.timed_out = True
                run.end_epoch = done
                log.error(
                    "no new pattern and no scan_complete in %s for %g s (data.follow_timeout_s):"
                    " ending the run with the %d patterns it has",
                    ds.path,
                    self.timeout_s,
                    ds.n_tiles,
                )
            else:
                run.end_epoch = max(int(run.end_epoch), done + 2)

    def grow(self, run: RunContext, n: int) -> None:
        """Take tiles ``[n_have, n)`` into the dataset, the state and this rank's share."""
        ds, state, dist = self.followed(run), run.state, run.distribution
        assert state is not None
        start, stop = ds.extend(n)
        if stop == start:  # every new tile was skipped (warned about by the dataset)
            return
        new_pos = np.asarray(ds.geometry.positions_px[start:stop])
        pos_t = torch.as_tensor(new_pos, dtype=state.positions_px.dtype)
        state.positions_px = torch.cat([state.positions_px, pos_t.to(state.positions_px.device)])
        mine = start + np.asarray(dist.shard_tiles(new_pos), dtype=np.int64)
        old = run.measurements[0]
        new = Measurements.from_dataset(ds, 0, mine, old.amplitudes.device, old.amplitudes.dtype)
        run.measurements[0] = concat_measurements(old, new)
        run.engine.add_measurements(run.measurements[0], state)
        run.state_changed()
        if run.truth is not None:  # the illumination of the truth metrics covers the new tiles
            from ptyframe.metrics.truth import TruthMetrics

            names = list(run.cfg.metrics.names)
            run.truth = TruthMetrics(names, run.registry, run.context, ds)
        log.info("follow: %d patterns (+%d)", stop, stop - start)

    def on_run_end(self, run: RunContext, status: str) -> None:
        if not self.active:
            return
        ended = self.ended(status)
        ds = self.followed(run)
        n = int(ds.n_tiles)
        if ended == "complete":
            log.info("follow ended: complete (%d patterns, scan_complete set)", n)
        else:
            log.warning(
                "follow ended: %s, before scan_complete (%d patterns in the result)", ended, n
            )
        run.attrs.update(
            follow_ended=ended,
            follow_timed_out=self.timed_out,
            scan_complete=self.complete,
            follow_error=self.error,
            follow_skipped_tiles=np.asarray(sorted(ds.skipped), dtype=np.int64),
        )
        ds.scan.close()
