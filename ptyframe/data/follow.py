"""Follow a data-exchange file while its writer is still appending a scan to it (SWMR).

The contract (``data.follow=true``; a writer: ``ptyframe.simulation.stream``):

* the writer creates the file with ``/metadata/object_shape_px`` (the object frame, fixed),
  ``/metadata/energy_ev``, ``/metadata/psize_cm``, the root attribute ``scan_complete =
  False``, and the growable datasets ``/exchange/data`` ``[1, 0, M, M]`` (maxshape
  ``[1, None, M, M]``) and ``/metadata/probe_pos_px`` ``[0, 2]``; then switches to h5py's
  SWMR write mode (``f.swmr_mode = True``);
* it appends along the tile axis (data and positions; either may land first), flushing
  both, and at the end sets ``scan_complete = True``.

``GrowingScan.poll`` refreshes both datasets and returns how many patterns have fully
arrived: ``min(len(data), len(positions))`` (a torn append, one grown before the other,
waits for the other), and whether the scan is complete. A file whose tile count falls is an
error (it was rewritten); so is a file that never appears within ``timeout_s``.
``GrowingScan.read(start, stop)`` returns those tiles' centred intensities and positions,
read through ``GrowingScan.reader()``, the ``FrameReader`` a streamed run uses too.

What arrives is screened tile by tile (``screen``), because a live run cannot be resumed
and stopping it for one detector glitch would cost the feedback for the rest of the scan:
NaN/Inf pixels become unmeasured (negative, as in every data-exchange file), and a tile with
no measured pixel or a position that is not finite or lies outside the object frame is
skipped with a warning naming its index in the file (``recon.h5`` lists them in
``follow_skipped_tiles``). A file that changes shape under the reader (patterns of another
size, positions that are not ``[n, 2]``, a shrinking scan) is an error naming the tiles: the
writer is wrong and nothing after it can be trusted (``FollowCallback`` then ends the run
with what it has, saved).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptyframe.data.counts import FrameReader, PixelRule
from ptyframe.data.dataset import PtychoDataset, _to_intensity
from ptyframe.data.exchange import Truth
from ptyframe.data.geometry import ScanGeometry
from ptyframe.errors import DataValidationError

log = logging.getLogger("ptyframe")

DATA = "exchange/data"
POSITIONS = "metadata/probe_pos_px"
COMPLETE = "scan_complete"


@dataclass(frozen=True)
class Arrival:
    """What ``poll`` saw: ``n`` patterns complete (data and position), ``torn`` if one of the
    two datasets was longer, ``complete`` if the writer set ``scan_complete``."""

    n: int
    complete: bool
    torn: bool = False


@dataclass(frozen=True)
class Chunk:
    """Tiles ``[start, stop)`` of the file after ``screen``: the usable ones and what was not.

    ``data`` ``[k, M, M]`` float32 and ``positions_px`` ``[k, 2]`` of the kept tiles,
    ``skipped`` (index in the file -> why), ``masked_px`` NaN/Inf pixels made unmeasured.
    """

    data: np.ndarray
    positions_px: np.ndarray
    skipped: dict[int, str]
    masked_px: int


def screen(data: np.ndarray, pos: np.ndarray, start: int, object_shape: tuple[int, int]) -> Chunk:
    """Return the usable tiles of ``data`` ``[k, M, M]`` / ``pos`` ``[k, 2]`` (file tile ``start``).

    NaN/Inf pixels are set to -1 (unmeasured). A tile is skipped if its position is not
    finite, is negative, or puts the window beyond ``object_shape`` (``ceil(p) + M >
    shape``, the rule of ``ptyframe.data.validate``), or if no pixel is measured (>= 0).
    """
    finite = np.isfinite(data)
    masked = int(data.size - np.count_nonzero(finite))
    if masked:
        data = np.where(finite, data, np.float32(-1.0)).astype(np.float32)
    window = data.shape[-2:]
    skipped: dict[int, str] = {}
    for i in range(len(data)):
        y, x = (float(v) for v in pos[i])
        if not (np.isfinite(y) and np.isfinite(x)):
            skipped[start + i] = f"its position ({y:g}, {x:g}) is not finite"
        elif (
            y < 0
            or x < 0
            or np.ceil(y) + window[0] > object_shape[0]
            or np.ceil(x) + window[1] > object_shape[1]
        ):
            skipped[start + i] = (
                f"its position ({y:g}, {x:g}) puts the {window[0]}x{window[1]} window outside "
                f"the object frame {object_shape[0]}x{object_shape[1]}"
            )
        elif not (data[i] >= 0).any():
            skipped[start + i] = "it has no measured pixel (all values negative or NaN)"
    keep = np.array([start + i not in skipped for i in range(len(data))], dtype=bool)
    return Chunk(data[keep], pos[keep], skipped, masked)


def _open_swmr(path: Path) -> Any:
    import h5py

    return h5py.File(path, "r", libver="latest", swmr=True)


class GrowingScan:
    """A data-exchange file another process is appending to (module docstring)."""

    def __init__(self, path: str | Path, timeout_s: float = 60.0, poll_s: float = 0.1) -> None:
        self.path = Path(path)
        self.timeout_s = float(timeout_s)
        self.poll_s = float(poll_s)
        self.file = self._wait_for_file()
        self.seen = 0
        for key in (DATA, POSITIONS, "metadata/object_shape_px"):
            if key not in self.file:
                raise DataValidationError(
                    f"{self.path}: /{key} is missing; a followed file must be created with "
                    "/exchange/data, /metadata/probe_pos_px and /metadata/object_shape_px "
                    "(see ptyframe.data.follow)"
                )
        d = self.file[DATA]
        if d.ndim != 4 or d.shape[0] != 1:
            raise DataValidationError(
                f"{self.path}: /exchange/data is {d.shape}; a followed file holds one angle "
                "[1, n, M, M] growing along the tile axis"
            )
        self.window = (int(d.shape[2]), int(d.shape[3]))
        self._check_shapes(0)
        shape = np.asarray(self.file["metadata/object_shape_px"][()]).ravel()
        self.object_shape = (int(shape[0]), int(shape[1]))

    def _check_shapes(self, start: int) -> None:
        """Raise if the patterns changed size or the positions are not ``[n, 2]``."""
        d, p = self.file[DATA], self.file[POSITIONS]
        if d.ndim != 4 or (int(d.shape[2]), int(d.shape[3])) != self.window:
            raise DataValidationError(
                f"{self.path}: from tile {start} on, /exchange/data has the shape "
                f"{d.shape}, but the scan started with {self.window[0]}x{self.window[1]} "
                "patterns; every pattern of a followed scan must have the same size"
            )
        if p.ndim != 2 or p.shape[1] != 2:
            raise DataValidationError(
                f"{self.path}: /metadata/probe_pos_px is {p.shape} (from tile {start} on); "
                "it must be [n, 2], one (y, x) row per pattern"
            )

    def _wait_for_file(self) -> Any:
        t0 = time.monotonic()
        while True:
            if self.path.exists():
                try:
                    return _open_swmr(self.path)
                except OSError:  # being created, or locked by a writer not in SWMR mode yet
                    pass
            if time.monotonic() - t0 > self.timeout_s:
                raise DataValidationError(
                    f"{self.path}: no SWMR-readable file after {self.timeout_s:g} s "
                    "(data.follow_timeout_s); is the writer running and in SWMR mode?"
                )
            time.sleep(self.poll_s)

    # ------------------------------------------------------------------ metadata
    def geometry(self, positions_px: np.ndarray) -> ScanGeometry:
        """Return the geometry of tiles at ``positions_px`` (the object frame from the file)."""
        f = self.file
        return ScanGeometry(
            np.asarray(positions_px, dtype=np.float64),
            self.window,
            self.object_shape,
            float(f["metadata/energy_ev"][()]),
            float(f["metadata/psize_cm"][()]) * 1e-2,
        )

    def truth(self) -> Truth | None:
        """Return ``/truth`` if the writer stored one (simulations), else None."""
        f = self.file
        if "truth/object" not in f:
            return None
        obj = np.asarray(f["truth/object"][()])
        probe = np.asarray(f["truth/probe"][()]) if "truth/probe" in f else None
        if probe is not None and probe.ndim == 2:
            probe = probe[None]
        illum = np.asarray(f["truth/illumination"][()]) if "truth/illumination" in f else None
        obj = obj if obj.ndim == 3 else obj[None]
        return Truth(obj, probe, illum)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ growth
    def poll(self) -> Arrival:
        """Refresh and return what has arrived; raise if the file shrank.

        The file is opened again: a SWMR reader's ``refresh`` updates a dataset's extent but
        not the attributes, and ``scan_complete`` is one.
        """
        self.file.close()
        self.file = self._wait_for_file()
        d, p = self.file[DATA], self.file[POSITIONS]
        nd, npos = int(d.shape[1]), int(p.shape[0])
        self._check_shapes(self.seen)
        n = min(nd, npos)
        if n < self.seen:
            raise DataValidationError(
                f"{self.path}: the scan shrank from {self.seen} to {n} patterns (data {nd}, "
                f"positions {npos}); was the file rewritten? Start the run again"
            )
        self.seen = n
        complete = bool(self.file.attrs.get(COMPLETE, False))
        if complete and nd != npos:
            raise DataValidationError(
                f"{self.path}: scan_complete is set but /exchange/data has {nd} patterns and "
                f"/metadata/probe_pos_px {npos} positions; they must match"
            )
        return Arrival(n, complete, torn=nd != npos)

    def wait(self, have: int, timeout_s: float | None = None) -> Arrival:
        """Block until more than ``have`` patterns arrived, the scan completes, or timeout."""
        limit = self.timeout_s if timeout_s is None else float(timeout_s)
        t0 = time.monotonic()
        while True:
            a = self.poll()
            if a.n > have or a.complete or time.monotonic() - t0 >= limit:
                return a
            time.sleep(self.poll_s)

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (centred intensities ``[k, M, M]`` float32, positions ``[k, 2]``).

        The file is opened again first: on MPI ranks that do not poll (only the root does)
        the handle would still show the extent of the last opening.
        """
        if int(self.file[POSITIONS].shape[0]) < stop or int(self.file[DATA].shape[1]) < stop:
            self.file.close()
            self.file = self._wait_for_file()
        self._check_shapes(start)
        reader = self.reader()
        raw = reader.raw_frames(self.file, np.arange(start, stop, dtype=np.int64))
        data = _to_intensity(raw, reader.quantity)
        pos = np.asarray(self.file[POSITIONS][start:stop], dtype=np.float64)
        return data, pos

    def reader(self) -> FrameReader:
        """Return the reader of this file's patterns (a streamed run reads through it too:
        ``ptyframe.data.stream.StreamedSource(..., swmr=True)``)."""
        d = self.file[DATA]
        quantity = d.attrs.get("quantity", "intensity")
        quantity = quantity.decode() if isinstance(quantity, bytes) else str(quantity)
        rule = PixelRule(squared=quantity == "magnitude")
        return FrameReader(
            self.window, np.dtype(d.dtype), rule, quantity, path=str(self.path), key=DATA
        )

    def read_screened(self, start: int, stop: int) -> Chunk:
        """Return tiles ``[start, stop)`` after ``screen``; warn about what it changed."""
        data, pos = self.read(start, stop)
        chunk = screen(data, pos, start, self.object_shape)
        if chunk.masked_px:
            log.warning(
                "follow: tiles %d..%d of %s hold %d NaN/Inf pixels; they are taken as unmeasured",
                start,
                stop - 1,
                self.path,
                chunk.masked_px,
            )
        for i, why in chunk.skipped.items():
            log.warning("follow: tile %d of %s is skipped: %s", i, self.path, why)
        return chunk

    def dataset(self, n: int) -> GrowingDataset:
        """Return an in-memory dataset of the first ``n`` tiles that can take more."""
        chunk = self.read_screened(0, n)
        if len(chunk.data) == 0:
            raise DataValidationError(
                f"{self.path}: none of the first {n} patterns can be used (see the warnings "
                "above); fix the writer and start again"
            )
        ds = GrowingDataset(self, self.geometry(chunk.positions_px), chunk.data, self.truth())
        ds.next_tile, ds.skipped = n, dict(chunk.skipped)
        return ds

    def close(self) -> None:
        self.file.close()


class GrowingDataset(PtychoDataset):
    """The arrived tiles of a ``GrowingScan`` in memory; ``extend`` adds the next ones.

    ``next_tile`` is the first tile of the file not read yet; it runs ahead of ``n_tiles``
    by the tiles ``screen`` skipped (``skipped``: index in the file -> why).
    """

    def __init__(
        self, scan: GrowingScan, geometry: ScanGeometry, data: np.ndarray, truth: Truth | None
    ) -> None:
        super().__init__(geometry, patterns=data[None], truth=truth)
        self.path = str(scan.path)
        self.scan = scan
        self.next_tile = self.n_tiles
        self.skipped: dict[int, str] = {}
        self.conventions["follow"] = "patterns read while the scan was written (SWMR)"

    def extend(self, stop: int) -> tuple[int, int]:
        """Read the file's tiles ``[next_tile, stop)``; return the range of this dataset's
        tiles they became (shorter by the skipped ones)."""
        start = self.n_tiles
        if stop <= self.next_tile:
            return start, start
        chunk = self.scan.read_screened(self.next_tile, stop)
        self.next_tile = stop
        self.skipped.update(chunk.skipped)
        data, pos = chunk.data, chunk.positions_px
        if len(data) == 0:
            return start, start
        assert self._patterns is not None
        self._patterns = np.concatenate([self._patterns, data[None]], axis=1)
        self._shape = tuple(int(s) for s in self._patterns.shape)
        g = self.geometry
        self.geometry = ScanGeometry(
            np.concatenate([g.positions_px, pos]),
            g.window,
            g.object_shape,
            g.energy_ev,
            g.pixel_size_m,
            g.free_prop_m,
            g.theta_rad,
        )
        return start, self.n_tiles


def open_followed(path: str | Path, timeout_s: float) -> GrowingDataset:
    """Wait for the first patterns of a growing file and return them as a ``GrowingDataset``."""
    scan = GrowingScan(path, timeout_s)
    first = scan.wait(0)
    if first.n == 0:
        scan.close()
        raise DataValidationError(
            f"{path}: no pattern arrived within {timeout_s:g} s (data.follow_timeout_s)"
        )
    log.info("following %s: %d patterns so far", path, first.n)
    return scan.dataset(first.n)
