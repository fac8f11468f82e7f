"""Give read-only, lazy access to a ptychographic dataset (file-backed or in memory).

``PtychoDataset.open(path)`` validates a data-exchange file (``ptyframe.data.validate``);
other layouts come through a reader (``ptyframe.data.reader``, ``ptyframe.data.scanfile``),
which sets ``data_key`` (the HDF5 path of the patterns), ``layout`` and the detector
preprocessing ``pipeline``. Patterns are read only when asked, tile range by tile range, so
a rank of a distributed run reads only its shard. They come back as intensities, centred
(zero frequency in the middle), float32, with negative values marking unmeasured pixels;
magnitude files are squared on read, then the pipeline (orientation, mask, dark, crop, bin)
is applied.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ptyframe.data.exchange import Truth
from ptyframe.data.geometry import ScanGeometry
from ptyframe.data.validate import inspect_file


def _to_intensity(block: np.ndarray, quantity: str) -> np.ndarray:
    block = block.astype(np.float32, copy=False)
    if quantity == "magnitude":
        out = np.square(block)
        out[block < 0] = -1.0
        return out
    return block


class PtychoDataset:
    """Patterns ``[n_angles, n_tiles, M, M]`` with their geometry and optional ground truth."""

    def __init__(
        self,
        geometry: ScanGeometry,
        *,
        patterns: np.ndarray | None = None,
        path: str | None = None,
        quantity: str = "intensity",
        truth: Truth | None = None,
        has_truth: bool | None = None,
        data_key: str = "exchange/data",
        layout: str = "angles_tiles",
        pipeline: Callable[[np.ndarray], np.ndarray] | None = None,
        conventions: dict[str, Any] | None = None,
    ) -> None:
        if (patterns is None) == (path is None):
            raise ValueError("give either in-memory patterns or a file path")
        if patterns is not None:
            patterns = np.asarray(patterns)
            if patterns.ndim == 3:
                patterns = patterns[None]
            self._shape = tuple(int(s) for s in patterns.shape)
        self._patterns = patterns
        self.path = path
        self.quantity = quantity
        self.geometry = geometry
        self._truth = truth
        self._has_truth = truth is not None if has_truth is None else has_truth
        self.data_key = data_key
        self.layout = layout
        self.pipeline = pipeline
        #: The file conventions the reader applied (recorded in ``recon.h5``).
        self.conventions: dict[str, Any] = dict(conventions or {})

    @classmethod
    def open(cls, path: str | os.PathLike, validate_values: bool = True) -> PtychoDataset:
        """Validate the data-exchange file at ``path`` and return a lazy dataset on it."""
        summary = inspect_file(path, scan_values=validate_values)
        ds = cls(
            summary.geometry,
            path=summary.path,
            quantity=summary.quantity,
            has_truth=summary.has_truth,
        )
        ds._shape = summary.shape
        return ds

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self._shape  # type: ignore[return-value]

    @property
    def n_angles(self) -> int:
        return self.shape[0]

    @property
    def n_tiles(self) -> int:
        return self.shape[1]

    @property
    def window(self) -> tuple[int, int]:
        return self.geometry.window

    # ------------------------------------------------------------------ patterns
    def intensities(
        self, angle: int = 0, indices: Sequence[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Return centred intensities ``[n, M, M]`` float32 for ``indices`` (all by default)."""
        if not 0 <= angle < self.n_angles:
            raise IndexError(f"angle {angle} out of range (dataset has {self.n_angles})")
        if indices is None:
            sel: slice | np.ndarray = slice(None)
        else:
            sel = np.asarray(indices, dtype=np.int64)
        if self._patterns is not None:
            return _to_intensity(np.asarray(self._patterns[angle][sel]), self.quantity)
        import h5py

        with h5py.File(self.path, "r") as f:
            block = _read_frames(f[self.data_key], self.layout, angle, sel)
        out = _to_intensity(np.asarray(block), self.quantity)
        return self.pipeline(out) if self.pipeline is not None else out

    # ------------------------------------------------------------------ truth
    @property
    def has_truth(self) -> bool:
        return self._has_truth

    @property
    def truth(self) -> Truth | None:
        """Return the ground truth (read once from the file), or None."""
        if self._truth is None and self._has_truth and self.path is not None:
            import h5py

            with h5py.File(self.path, "r") as f:
                g = f["truth"]
                obj = np.asarray(g["object"][()])
                if obj.ndim == 2:
                    obj = obj[None]
                probe = np.asarray(g["probe"][()]) if "probe" in g else None
                if probe is not None and probe.ndim == 2:
                    probe = probe[None]
                illum = np.asarray(g["illumination"][()]) if "illumination" in g else None
            self._truth = Truth(obj, probe, illum)  # type: ignore[arg-type]
        return self._truth

    def select(self, indices: Sequence[int] | np.ndarray) -> PtychoDataset:
        """Return an in-memory dataset holding only the given tiles (all angles)."""
        idx = np.asarray(indices, dtype=np.int64)
        pats = np.stack([self.intensities(a, idx) for a in range(self.n_angles)])
        return PtychoDataset(
            self.geometry.select(idx),
            patterns=pats,
            truth=self.truth,
            conventions=self.conventions,
        )


def _read_frames(ds: Any, layout: str, angle: int, sel: slice | np.ndarray) -> np.ndarray:
    """Read frames ``sel`` of ``angle`` from ``ds`` stored in ``layout`` (see ``ScanFile``)."""
    if layout == "raster":  # [n_y, n_x, H, W], tiles in row-major order
        nx = int(ds.shape[1])
        idx = np.arange(int(ds.shape[0]) * nx) if isinstance(sel, slice) else sel
        return np.stack([ds[int(i) // nx, int(i) % nx] for i in idx])

    def take(index: Any) -> np.ndarray:
        return ds[angle, index] if layout == "angles_tiles" else ds[index]

    if isinstance(sel, slice):
        return take(slice(None))
    order = np.argsort(sel)
    uniq, inverse = np.unique(sel[order], return_inverse=True)
    block_sorted = take(uniq)[inverse]
    block = np.empty_like(block_sorted)
    block[order] = block_sorted
    return block
