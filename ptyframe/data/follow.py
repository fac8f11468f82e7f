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
``GrowingScan.read(start, stop)`` returns those tiles' centred intensities and positions.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptyframe.data.dataset import PtychoDataset
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
    def geometry(self, n: int) -> ScanGeometry:
        """Return the geometry of the first ``n`` tiles (the object frame from the file)."""
        f = self.file
        shape = tuple(int(v) for v in np.asarray(f["metadata/object_shape_px"][()]).ravel())
        m = tuple(int(v) for v in f[DATA].shape[-2:])
        return ScanGeometry(
            np.asarray(f[POSITIONS][:n], dtype=np.float64),
            (m[0], m[1]),
            (shape[0], shape[1]),
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
        data = np.asarray(self.file[DATA][0, start:stop], dtype=np.float32)
        pos = np.asarray(self.file[POSITIONS][start:stop], dtype=np.float64)
        if "quantity" in self.file[DATA].attrs and self.file[DATA].attrs["quantity"] == "magnitude":
            data = np.where(data < 0, -1.0, np.square(data)).astype(np.float32)
        return data, pos

    def dataset(self, n: int) -> GrowingDataset:
        """Return an in-memory dataset of the first ``n`` tiles that can take more."""
        data, _ = self.read(0, n)
        return GrowingDataset(self, self.geometry(n), data, self.truth())

    def close(self) -> None:
        self.file.close()


class GrowingDataset(PtychoDataset):
    """The arrived tiles of a ``GrowingScan`` in memory; ``extend`` adds the next ones."""

    def __init__(
        self, scan: GrowingScan, geometry: ScanGeometry, data: np.ndarray, truth: Truth | None
    ) -> None:
        super().__init__(geometry, patterns=data[None], truth=truth)
        self.path = str(scan.path)
        self.scan = scan
        self.conventions["follow"] = "patterns read while the scan was written (SWMR)"

    def extend(self, stop: int) -> tuple[int, int]:
        """Read tiles ``[n_tiles, stop)`` from the file; return that range."""
        start = self.n_tiles
        if stop <= start:
            return start, start
        data, pos = self.scan.read(start, stop)
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
        return start, stop


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
