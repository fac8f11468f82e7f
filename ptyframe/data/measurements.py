"""Hold a process's patterns as FFT-order float amplitudes and a mask, in memory.

``Measurements`` holds the float amplitudes of a process's patterns: what the engines that
read a whole scan at once take (RAAR, HIO, autodiff), and what the streaming engines take
when the stored dtype is as wide as the run's real dtype (nothing to save by keeping the
counts; ``ptyframe.data.patterns`` holds them otherwise, amplitudes formed when used). It
answers the same questions as a pattern source (``order``, ``blocks``, ``batch``,
``amplitude_chunks``, the sums), so a sweep reads either through ``ptyframe.data.feed``.

It is built chunk by chunk (``ptyframe.data.counts.FrameReader``) into one preallocated
tensor, with no full-size temporary, and its statistics are summed pattern by pattern.
Where every pattern has the same unmeasured pixels (a detector's gaps and bad pixels) the
mask is one ``[M, M]`` array seen as ``[n, M, M]`` (``expand``: a view with stride 0), not a
copy per pattern.

The amplitudes are bit for bit those of ``sqrt(clamp(I, 0))`` on
``PtychoDataset.intensities`` (``ptyframe.data.counts``, module docstring).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ptyframe.data.counts import CHUNK_BYTES, FrameReader, amplitudes, frame_reader
from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.geometry import ScanGeometry


@dataclass
class Measurements:
    """Measured amplitudes of the tiles one process works on.

    ``amplitudes`` ``[n, M, M]`` real, FFT order, ``sqrt(I)`` (0 where unmeasured);
    ``valid`` ``[n, M, M]`` bool, False where the stored value was negative, masked or
    saturated (unmeasured), or None when every pixel was measured; a mask shared by every
    pattern is an ``expand``-ed ``[M, M]`` view; ``indices`` ``[n]`` the tiles' indices in the
    file; ``geometry`` the whole scan's geometry (positions of all tiles).
    """

    amplitudes: torch.Tensor
    valid: torch.Tensor | None
    indices: np.ndarray
    geometry: ScanGeometry
    angle: int = 0
    #: Patterns per block of the visiting order (``order.block_order``; 0: one block).
    block_size: int = 0

    @property
    def n(self) -> int:
        return int(self.amplitudes.shape[0])

    @property
    def real_dtype(self) -> torch.dtype:
        """The real dtype the amplitudes are held in (the run's)."""
        return self.amplitudes.dtype

    @property
    def has_unmeasured(self) -> bool:
        """Whether any pixel of any pattern is unmeasured (``valid`` is not None)."""
        return self.valid is not None

    @property
    def block_patterns(self) -> int:
        """Patterns per block (``block_size``, or all of them: one block)."""
        return max(1, int(self.block_size or self.n))

    def order(self, seed: int, epoch: int) -> np.ndarray:
        """Return the visiting order of ``epoch`` (``order.block_order``; one block:
        ``np.random.default_rng([seed, epoch]).permutation(n)``)."""
        from ptyframe.data.order import block_order

        return block_order(self.n, self.block_patterns, seed, epoch)

    def blocks(self) -> Generator[tuple[int, torch.Tensor], None, None]:
        """Yield ``(start, amplitudes of the block)`` block by block in scan order."""
        step = self.block_patterns
        for s in range(0, self.n, step):
            yield s, self.amplitudes[s : s + step]

    def amplitude_chunks(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
        """Yield ``(start, A [k, M, M], valid [k, M, M] or None)`` views of ``CHUNK_BYTES``."""
        for s, a in self.chunks():
            yield s, a, None if self.valid is None else self.valid[s : s + a.shape[0]]

    @property
    def window(self) -> tuple[int, int]:
        return (int(self.amplitudes.shape[-2]), int(self.amplitudes.shape[-1]))

    @property
    def shared_mask(self) -> bool:
        """Return True when ``valid`` is one mask shared by every pattern (a stride-0 view)."""
        return self.valid is not None and self.n > 1 and self.valid.stride(0) == 0

    def chunks(self, size: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, amplitudes[start:start + k])`` views of about ``CHUNK_BYTES``."""
        m, n = self.window
        step = size or max(1, CHUNK_BYTES // (m * n * self.amplitudes.element_size()))
        for s in range(0, self.n, step):
            yield s, self.amplitudes[s : s + step]

    def pattern_sums(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(sum_q A, sum_q A^2)`` per pattern ``[n]`` float64, chunk by chunk."""
        a_sum = torch.empty(self.n, dtype=torch.float64)
        a2_sum = torch.empty(self.n, dtype=torch.float64)
        for s, a in self.chunks():
            k = a.shape[0]
            a_sum[s : s + k] = a.sum(dim=(-2, -1), dtype=torch.float64).cpu()
            a2_sum[s : s + k] = a.square().sum(dim=(-2, -1), dtype=torch.float64).cpu()
        return a_sum, a2_sum

    def amplitude_sum(self) -> float:
        """Return ``sum sqrt(I)`` over measured pixels (the data-error denominator).

        Summed per pattern in float64, then over the patterns.
        """
        return float(self.pattern_sums()[0].sum())

    def intensity_sum(self) -> float:
        """Return ``sum_j sum_q A_jq^2`` (measured photons): per pattern, then over them."""
        return float(self.pattern_sums()[1].sum())

    def mean_intensity_sum(self) -> float:
        """Return the mean over tiles of ``sum I`` over measured pixels (photons per pattern)."""
        return float(self.pattern_sums()[1].mean())

    def mean_intensity(self) -> torch.Tensor:
        """Return the mean pattern ``(1/n) sum_j A_j^2`` ``[M, M]`` float64, FFT order."""
        total = torch.zeros(self.window, dtype=torch.float64)
        for _, a in self.chunks():
            total += a.double().square().sum(0).cpu()
        return total / max(self.n, 1)

    def batch(
        self, idx: torch.Tensor, device: str | torch.device
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the amplitudes (and mask, or None) of tiles ``idx`` on ``device``.

        Patterns kept on the host (``patterns_on_host=true``) while the unknowns live on a
        GPU are gathered on the host, copied into page-locked memory and sent with
        ``non_blocking=True``, one minibatch at a time; patterns already on ``device`` are
        only indexed.
        """
        device = torch.device(device)
        here = self.amplitudes.device
        i = idx.to(here)
        amps = self.amplitudes[i]
        valid = None if self.valid is None else self.valid[i]
        if here == device:
            return amps, valid
        pin = device.type == "cuda" and here.type == "cpu"
        return _send(amps, device, pin), None if valid is None else _send(valid, device, pin)

    @classmethod
    def from_dataset(
        cls,
        dataset: PtychoDataset,
        angle: int = 0,
        indices: np.ndarray | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        chunk_bytes: int = CHUNK_BYTES,
        block_patterns: int | None = None,
    ) -> Measurements:
        """Read tiles ``indices`` (all by default) of ``angle`` and convert them, chunk by chunk.

        ``block_patterns``: the blocks of the visiting order (None: one block).
        """
        if indices is None:
            indices = np.arange(dataset.n_tiles, dtype=np.int64)
        reader = frame_reader(dataset, angle)
        amps, valid = _convert(reader, np.asarray(indices, dtype=np.int64), dtype, chunk_bytes)
        device = torch.device(device)
        if device.type != "cpu":
            amps = amps.to(device)
            if valid is not None:
                shared = valid.stride(0) == 0 and valid.shape[0] > 1
                valid = valid[0].to(device).expand_as(amps) if shared else valid.to(device)
        idx = np.asarray(indices, dtype=np.int64)
        return cls(amps, valid, idx, dataset.geometry, angle, int(block_patterns or 0))


def _convert(
    reader: FrameReader, idx: np.ndarray, dtype: torch.dtype, chunk_bytes: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return amplitudes ``[n, M, M]`` and the mask (shared view, per pattern, or None)."""
    n = len(idx)
    amps = torch.empty((n, *reader.window), dtype=dtype)
    ref: torch.Tensor | None = None  # the first pattern's mask, while all are equal to it
    per: torch.Tensor | None = None  # per-pattern masks, once two differ
    for s, block in reader.chunks(idx, chunk_bytes):
        a, ok = amplitudes(torch.from_numpy(block), reader.rule, dtype)
        k = a.shape[0]
        amps[s : s + k] = a
        if ref is None:
            ref = ok[0].clone()
        if per is None and not bool((ok == ref).all()):
            per = torch.empty((n, *reader.window), dtype=torch.bool)
            per[:s] = ref
        if per is not None:
            per[s : s + k] = ok
    if per is not None:
        return amps, per
    if ref is None or bool(ref.all()):
        return amps, None
    return amps, ref.expand(n, *reader.window)


def _send(t: torch.Tensor, device: torch.device, pin: bool) -> torch.Tensor:
    """Copy ``t`` to ``device`` (through page-locked memory when ``pin``), asynchronously."""
    return (t.pin_memory() if pin else t).to(device, non_blocking=pin)
