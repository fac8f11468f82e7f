"""Read a dataset's patterns chunk by chunk in the dtype they were stored in.

Engines consume counts (or magnitudes) as the detector stored them: ``uint16``/``uint32``
photon counts, ``float16``/``float32`` intensities. A ``FrameReader`` reads the patterns of
one angle, chunk by chunk, into an array the caller preallocates, with the detector options
that keep the dtype applied on the way (orientation and crop are views; the bad-pixel mask
and the saturation level become a ``PixelRule``, applied when a count is used). Options that
change the values (``data.dark``, ``data.bin``) give float32 intensities with ``-1`` at
unmeasured pixels, as ``PtychoDataset.intensities`` does.

A ``PixelRule`` says which stored values are measured and how a value becomes an amplitude,
the same rule everywhere (``ptyframe.data.amplitude_kernels`` for the compiled kernels, and
``amplitudes`` below, their torch reference)::

    x     = float32(c)              stored intensity (count)
          = float32(c)^2            stored magnitude (``quantity="magnitude"``)
    valid = x >= 0  and  mask[q]  and  x < saturation
    A     = sqrt(x) if valid else 0 (float32, then the run's real dtype)

which is what ``PtychoDataset.intensities`` followed by ``sqrt(clamp(I, 0))`` gives (negative
values, masked pixels and saturated pixels all come out as ``I = -1`` there, amplitude 0),
with one difference in the last bit: ``sqrt`` is the correctly rounded float32 square root
(IEEE 754, numpy's, numba's ``math.sqrt``). ``torch.sqrt`` on float32 CPU tensors is not
always correctly rounded (one unit in the last place off for some values; the test of the
amplitude kernels shows it) and may differ between vector units, so a kernel could not
reproduce it; the correctly rounded root is the same on every machine and in every kernel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptyframe.data.dataset import PtychoDataset, _read_frames, _to_intensity
from ptyframe.data.preprocess import Preprocess, orient
from ptyframe.physics.fft import from_centred

#: Bytes of raw frames read at a time (one chunk) when a caller does not choose.
CHUNK_BYTES = 8 * 2**20


@dataclass(frozen=True)
class PixelRule:
    """Which stored values are measured, and how a stored value becomes an intensity.

    ``mask`` ``[M, M]`` bool (True = measured), centred as stored, shared by every pattern,
    or None; ``saturation``: values (intensities) at or above it are unmeasured, or None;
    ``squared``: the file stores magnitudes (``I = c^2``).
    """

    mask: np.ndarray | None = None
    saturation: float | None = None
    squared: bool = False

    @property
    def saturation32(self) -> np.float32:
        """Return the saturation level as float32 (``+inf`` when there is none)."""
        return np.float32(np.inf if self.saturation is None else self.saturation)


def intensity32(counts: torch.Tensor, rule: PixelRule) -> torch.Tensor:
    """Return ``x`` ``[..., M, M]`` float32 of stored values (module docstring)."""
    x = counts.to(torch.float32)
    return x * x if rule.squared else x


def valid_of(counts: torch.Tensor, rule: PixelRule) -> torch.Tensor:
    """Return the measured pixels ``[..., M, M]`` bool of stored ``counts`` (centred)."""
    x = intensity32(counts, rule)
    ok = x >= 0 if not rule.squared else counts.to(torch.float32) >= 0
    if rule.saturation is not None:
        ok &= x < torch.tensor(rule.saturation32)
    if rule.mask is not None:
        ok &= torch.from_numpy(rule.mask)
    return ok


def amplitudes(
    counts: torch.Tensor, rule: PixelRule, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(A, valid)`` of centred stored ``counts`` ``[B, M, M]``, in FFT order.

    ``A`` real of ``dtype`` (computed in float32 first, see the module docstring), 0 where
    unmeasured; ``valid`` bool. The torch reference of
    ``ptyframe.data.amplitude_kernels.amplitude_row``.
    """
    x = intensity32(counts, rule)
    ok = valid_of(counts, rule)
    x = torch.where(ok, x, torch.zeros((), dtype=torch.float32))
    amp = torch.from_numpy(np.sqrt(x.numpy()))  # correctly rounded (torch.sqrt is not)
    return from_centred(amp).to(dtype), from_centred(ok)


@dataclass
class FrameReader:
    """Read frames of one angle of a dataset, in the kept dtype, into the caller's array.

    ``source``: an in-memory array ``[n_tiles, H, W]`` or an open-on-demand HDF5 dataset
    (``path``, ``key``, ``layout``); ``tiles`` maps the dataset's tile indices to the
    source's (a subset view); ``transform`` turns raw frames into kept frames (orientation and
    crop, or the float32 fallback pipeline); ``dtype`` the kept dtype; ``rule`` the pixel
    rule of the kept frames.
    """

    window: tuple[int, int]
    dtype: np.dtype
    rule: PixelRule
    quantity: str
    angle: int = 0
    array: np.ndarray | None = None
    path: str | None = None
    key: str = "exchange/data"
    layout: str = "angles_tiles"
    tiles: np.ndarray | None = None
    pre: Preprocess | None = None
    fallback: Any = None
    #: A dataset whose own ``intensities`` must be used (a subclass that overrides it).
    via: Any = None

    def file_tiles(self, indices: np.ndarray) -> np.ndarray:
        """Return the source's tile indices of the dataset's ``indices``."""
        idx = np.asarray(indices, dtype=np.int64)
        return idx if self.tiles is None else self.tiles[idx]

    def raw_frames(self, h5: Any, indices: np.ndarray) -> np.ndarray:
        """Return the stored frames ``[k, H, W]`` of the dataset's tiles ``indices``."""
        if self.via is not None:
            return self.via.intensities(self.angle, np.asarray(indices, dtype=np.int64))
        tiles = self.file_tiles(indices)
        if self.array is not None:
            return np.asarray(self.array[tiles])
        ds = h5[self.key]
        if consecutive(tiles) and self.layout != "raster":
            lo, hi = int(tiles[0]), int(tiles[-1]) + 1
            return np.asarray(ds[self.angle, lo:hi] if self.layout == "angles_tiles" else ds[lo:hi])
        return np.asarray(_read_frames(ds, self.layout, self.angle, tiles))

    def keep(self, raw: np.ndarray) -> np.ndarray:
        """Turn raw frames into kept frames (the dtype-keeping options, or the fallback)."""
        if self.via is not None:
            return raw
        if self.fallback is not None:
            return self.fallback(_to_intensity(raw, self.quantity))
        if self.pre is None:
            return raw
        x = orient(raw, self.pre.orientation)
        if self.pre.window is not None:
            y0, x0, c = self.pre.window
            x = x[..., y0 : y0 + c, x0 : x0 + c]
        return x

    def read_into(self, h5: Any, indices: np.ndarray, out: np.ndarray) -> None:
        """Read the dataset's tiles ``indices`` into ``out`` ``[k, M, M]`` (kept dtype)."""
        if (
            self.array is None
            and self.via is None
            and self.pre is None
            and self.fallback is None
            and self.layout != "raster"
        ):
            tiles = self.file_tiles(indices)
            if consecutive(tiles) and out.flags.c_contiguous:
                lo, hi = int(tiles[0]), int(tiles[-1]) + 1
                ds = h5[self.key]
                src = np.s_[self.angle, lo:hi] if self.layout == "angles_tiles" else np.s_[lo:hi]
                ds.read_direct(out, src)  # straight into the caller's memory
                return
        out[...] = self.keep(self.raw_frames(h5, indices))

    def open(self, **kwargs: Any) -> Any:
        """Return an open ``h5py.File`` on the source (None for in-memory data)."""
        if self.array is not None or self.via is not None:
            return None
        import h5py

        return h5py.File(self.path, "r", **kwargs)

    def chunk_patterns(self, chunk_bytes: int = CHUNK_BYTES) -> int:
        """Return how many patterns make one chunk of about ``chunk_bytes``."""
        per = self.window[0] * self.window[1] * max(np.dtype(self.dtype).itemsize, 4)
        return max(1, int(chunk_bytes) // per)

    def read(self, indices: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
        """Return the kept frames ``[k, M, M]`` of ``indices``, read chunk by chunk into one
        preallocated array (no full-size temporary)."""
        idx = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(idx), *self.window), dtype=self.dtype)
        for start, block in self.chunks(idx, chunk_bytes):
            out[start : start + len(block)] = block
        return out

    def chunks(
        self, indices: np.ndarray, chunk_bytes: int = CHUNK_BYTES
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, frames [k, M, M])`` over ``indices`` in chunks (kept dtype)."""
        idx = np.asarray(indices, dtype=np.int64)
        step = self.chunk_patterns(chunk_bytes)
        h5 = self.open()
        try:
            for s in range(0, len(idx), step):
                part = idx[s : s + step]
                block = np.empty((len(part), *self.window), dtype=self.dtype)
                self.read_into(h5, part, block)
                yield s, block
        finally:
            if h5 is not None:
                h5.close()


def consecutive(tiles: np.ndarray) -> bool:
    """Return True when ``tiles`` is ``lo, lo + 1, ..., hi - 1`` (a slice reads it)."""
    return (
        len(tiles) > 0
        and int(tiles[-1]) - int(tiles[0]) == len(tiles) - 1
        and bool(np.all(np.diff(tiles) == 1))
    )


def frame_reader(dataset: PtychoDataset, angle: int = 0) -> FrameReader:
    """Return the ``FrameReader`` of ``dataset``'s angle ``angle`` (module docstring).

    A dataset class that reads its patterns its own way (overriding ``intensities``) is read
    through that method: float32 intensities, ``-1`` where unmeasured.
    """
    from ptyframe.data.holdout import TileSubset

    window = (int(dataset.shape[2]), int(dataset.shape[3]))
    if type(dataset).intensities not in (PtychoDataset.intensities, TileSubset.intensities):
        return FrameReader(
            window, np.dtype(np.float32), PixelRule(), "intensity", angle, via=dataset
        )
    tiles = None
    base = dataset
    while isinstance(base, TileSubset):
        sub = np.asarray(base.tiles, dtype=np.int64)
        tiles = sub if tiles is None else sub[tiles]
        base = base.base
    if type(base).intensities is not PtychoDataset.intensities:
        return FrameReader(
            window, np.dtype(np.float32), PixelRule(), "intensity", angle, via=dataset
        )
    if not 0 <= angle < base.n_angles:
        raise IndexError(f"angle {angle} out of range (dataset has {base.n_angles})")
    squared = base.quantity == "magnitude"
    common: dict[str, Any] = {"quantity": base.quantity, "angle": angle, "tiles": tiles}
    if base._patterns is not None:
        arr = base._patterns[angle]
        common["array"] = arr
        stored = arr.dtype
    else:
        import h5py

        with h5py.File(base.path, "r") as f:
            stored = f[base.data_key].dtype
        common.update(path=base.path, key=base.data_key, layout=base.layout)
    pipe = base.pipeline
    if pipe is None:
        return FrameReader(window, np.dtype(stored), PixelRule(squared=squared), **common)
    if isinstance(pipe, Preprocess) and pipe.dark is None and pipe.bin == 1:
        mask = None
        if pipe.valid is not None:
            mask = np.asarray(pipe.valid, dtype=bool)
            if pipe.window is not None:
                y0, x0, c = pipe.window
                mask = mask[y0 : y0 + c, x0 : x0 + c]
            mask = np.ascontiguousarray(mask)
        rule = PixelRule(mask, pipe.saturation, squared)
        return FrameReader(window, np.dtype(stored), rule, pre=pipe, **common)
    return FrameReader(window, np.dtype(np.float32), PixelRule(), fallback=pipe, **common)
