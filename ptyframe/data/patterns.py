"""Give engines the patterns of a run: counts in their stored dtype, in memory or streamed.

A pattern source holds the patterns of the tiles one process works on (``indices``, its
share of the scan), as stored (``uint16``/``uint32`` counts, ``float16``/``float32``
intensities), centred, with the ``PixelRule`` that says which pixels are measured
(``ptyframe.data.counts``). Amplitudes are formed when a pattern is used, never for the
whole scan. What an engine calls::

    order = source.order(seed, epoch)          # the visiting order of an epoch
    for j, row in source.visits(order): ...    # stored row [M, M] of pattern j (sequential)
    amps, valid = source.batch(idx, device)    # FFT-order amplitudes of a batch (minibatch)
    source.amplitude_sum()                     # sum sqrt(I) over measured pixels
    source.mean_intensity_sum()                # mean over patterns of sum I

Blocks. The patterns are split into blocks of ``block_patterns`` consecutive tiles (scan
order). ``order(seed, epoch)`` keeps the blocks in scan order and shuffles the positions
inside each block with one generator seeded by ``(seed, epoch)``, drawing the blocks'
permutations one after the other (``block_order``). With one block (the default in memory)
that is ``np.random.default_rng([seed, epoch]).permutation(n)``, the visiting order of
``ptyframe.engines.base.visiting_order``, so results do not change; a ``MemorySource`` given
the block size of a ``StreamedSource`` (``ptyframe.data.stream``) visits in the same order,
so the two give the same bits.

Masks. ``rule.mask`` ``[M, M]`` is shared by every pattern (a detector's gaps and bad
pixels); pixels unmeasured in some patterns only (negative values, saturation) are found
from the stored value itself when it is used, so no per-pattern mask is stored.
``has_unmeasured`` says whether any pixel of any pattern is unmeasured (``batch`` then
returns a mask, else None).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch

from ptyframe.data.counts import CHUNK_BYTES, FrameReader, PixelRule, amplitudes, frame_reader
from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.geometry import ScanGeometry
from ptyframe.data.order import block_order as block_order  # the sources' visiting order


@dataclass
class SourceInfo:
    """What a source holds: ``n`` patterns ``window`` of ``dtype``, their ``rule``."""

    n: int
    window: tuple[int, int]
    dtype: np.dtype
    rule: PixelRule
    indices: np.ndarray
    geometry: ScanGeometry
    angle: int = 0


class PatternSource(ABC):
    """The patterns of one process (module docstring); ``MemorySource`` or ``StreamedSource``.

    Subclasses give ``rows(start, stop)`` (stored rows ``[k, M, M]`` of local patterns
    ``[start, stop)``, a view where they can) and ``take(idx)`` (rows of any local indices).
    """

    info: SourceInfo
    block_patterns: int
    #: Whether any pixel of any pattern is unmeasured (known after ``scan``).
    has_unmeasured: bool = False
    real_dtype: torch.dtype = torch.float32
    #: the amplitude feed of this source (``ptyframe.data.feed.amplitude_feed`` keeps it here)
    feed_cache: object = None

    # ------------------------------------------------------------------ shape
    @property
    def n(self) -> int:
        return self.info.n

    @property
    def window(self) -> tuple[int, int]:
        return self.info.window

    @property
    def dtype(self) -> np.dtype:
        return self.info.dtype

    @property
    def rule(self) -> PixelRule:
        return self.info.rule

    @property
    def indices(self) -> np.ndarray:
        return self.info.indices

    @property
    def geometry(self) -> ScanGeometry:
        return self.info.geometry

    @property
    def angle(self) -> int:
        return self.info.angle

    @property
    def nbytes(self) -> int:
        """Bytes of all the stored rows (whether or not they are all in memory)."""
        m, n = self.window
        return self.n * m * n * np.dtype(self.dtype).itemsize

    # ------------------------------------------------------------------ access
    @abstractmethod
    def rows(self, start: int, stop: int) -> np.ndarray:
        """Return the stored rows ``[stop - start, M, M]`` of local patterns ``[start, stop)``."""

    @abstractmethod
    def take(self, idx: np.ndarray) -> np.ndarray:
        """Return the stored rows ``[len(idx), M, M]`` of local patterns ``idx`` (a copy)."""

    def blocks(self) -> Generator[tuple[int, np.ndarray], None, None]:
        """Yield ``(start, rows)`` block by block in scan order."""
        for s in range(0, self.n, self.block_patterns):
            yield s, self.rows(s, min(s + self.block_patterns, self.n))

    def chunks(self) -> Generator[tuple[int, np.ndarray], None, None]:
        """Yield ``(start, rows)`` in scan order in pieces of bounded size (statistics)."""
        yield from self.blocks()

    def order(self, seed: int, epoch: int) -> np.ndarray:
        """Return the visiting order of ``epoch`` (``block_order``)."""
        return block_order(self.n, self.block_patterns, seed, epoch)

    def visits(self, order: np.ndarray) -> Generator[tuple[int, np.ndarray], None, None]:
        """Yield ``(j, row)``: pattern ``j``'s stored row ``[M, M]``, centred, in ``order``."""
        for j in np.asarray(order, dtype=np.int64).tolist():
            yield j, self.rows(j, j + 1)[0]

    def resident_rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(rows, local)`` with ``rows[local]`` the stored rows of ``idx`` (a copy
        here; the resident array itself where every row is in memory)."""
        return self.take(idx), np.arange(len(idx))

    def block_runs(self, order: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Split ``order`` into runs of visits in one block: ``[(block, visits), ...]``.

        An order of ``order()`` has one run per block; another order may have more (a block
        left and visited again is read again).
        """
        order = np.asarray(order, dtype=np.int64)
        if len(order) == 0:
            return []
        bid = order // self.block_patterns
        cut = np.flatnonzero(np.diff(bid)) + 1
        starts, ends = np.r_[0, cut].tolist(), np.r_[cut, len(order)].tolist()
        return [(int(bid[s]), order[s:e]) for s, e in zip(starts, ends, strict=True)]

    def resident(
        self, order: np.ndarray, ahead: bool = True
    ) -> Generator[tuple[np.ndarray, int, np.ndarray], None, None]:
        """Yield ``(rows, lo, visits)``: runs of ``order`` whose stored rows are
        ``rows[visits - lo]``, each valid until the next is asked for (the feed's input).

        ``ahead``: a streamed source reads the next block in a thread of its own (True) or
        when it is asked for (``ptyframe.data.stream``); in memory it changes nothing.
        """
        for b, visits in self.block_runs(order):
            lo = b * self.block_patterns
            yield self.rows(lo, min(lo + self.block_patterns, self.n)), lo, visits

    def batch(
        self, idx: torch.Tensor | np.ndarray, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return FFT-order amplitudes ``[B, M, M]`` (and the mask, or None) of ``idx``.

        Formed from the stored rows on the host (``forming.form``, bit for bit
        ``counts.amplitudes``), then sent to ``device`` (page-locked memory for a GPU).
        """
        from ptyframe.data.forming import form

        i = np.asarray(torch.as_tensor(idx).cpu(), dtype=np.int64)
        rows, local = self.resident_rows(i)
        shape = (len(i), *self.window)
        amp = torch.empty(shape, dtype=self.real_dtype)
        valid = torch.empty(shape, dtype=torch.bool)
        form(self.rule, rows, local, amp.numpy(), valid.numpy(), np.empty(len(i), np.int64))
        device = torch.device(device)
        if device.type != "cpu":
            pin = device.type == "cuda"
            amp = (amp.pin_memory() if pin else amp).to(device, non_blocking=pin)
            valid = (valid.pin_memory() if pin else valid).to(device, non_blocking=pin)
        return amp, (valid if self.has_unmeasured else None)

    # ------------------------------------------------------------------ statistics
    def amplitude_chunks(
        self,
    ) -> Generator[tuple[int, torch.Tensor, torch.Tensor | None], None, None]:
        """Yield ``(start, A [k, M, M], valid [k, M, M] or None)`` in scan order, a chunk at
        a time (FFT order, the run's real dtype; streamed: one pass over the file)."""
        for s, rows in self.chunks():
            a, ok = amplitudes(torch.from_numpy(np.asarray(rows)), self.rule, self.real_dtype)
            yield s, a, (ok if self.has_unmeasured else None)

    def mean_intensity(self) -> torch.Tensor:
        """Return the mean pattern ``(1/n) sum_j A_j^2`` ``[M, M]`` float64, FFT order."""
        total = torch.zeros(self.window, dtype=torch.float64)
        for _, a, _ in self.amplitude_chunks():
            total += a.double().square().sum(0)
        return total / max(self.n, 1)

    def scan(self) -> None:
        """Read every pattern once (in chunks): per-pattern sums and ``has_unmeasured``.

        ``A`` and ``A^2`` in the run's real dtype, as ``Measurements.pattern_sums`` has them
        (the same sums whether a run holds float amplitudes or counts).
        """
        from ptyframe.data.counts import valid_of

        amp_sum = np.empty(self.n)
        sq_sum = np.empty(self.n)
        rule = self.rule
        unmeasured = rule.mask is not None and not bool(rule.mask.all())
        for s, rows in self.chunks():
            c = torch.from_numpy(np.asarray(rows))
            a, _ = amplitudes(c, rule, self.real_dtype)
            k = a.shape[0]
            amp_sum[s : s + k] = a.sum(dim=(-2, -1), dtype=torch.float64).numpy()
            sq_sum[s : s + k] = a.square().sum(dim=(-2, -1), dtype=torch.float64).numpy()
            unmeasured = unmeasured or not bool(valid_of(c, rule).all())
        self._sums = (amp_sum, sq_sum)
        self.has_unmeasured = bool(unmeasured)

    def amplitude_sum(self) -> float:
        """Return ``sum sqrt(I)`` over measured pixels (the data-error denominator).

        Summed per pattern in float64, then over patterns: the same value whatever the blocks.
        """
        if not hasattr(self, "_sums"):
            self.scan()
        return float(torch.from_numpy(self._sums[0]).sum())

    def intensity_sum(self) -> float:
        """Return ``sum_j sum_q A_jq^2`` (measured photons): per pattern, then over them."""
        if not hasattr(self, "_sums"):
            self.scan()
        return float(torch.from_numpy(self._sums[1]).sum())

    def mean_intensity_sum(self) -> float:
        """Return the mean over patterns of ``sum I`` over measured pixels."""
        if not hasattr(self, "_sums"):
            self.scan()
        return float(torch.from_numpy(self._sums[1]).mean())


class MemorySource(PatternSource):
    """All the patterns of one process in memory, in their stored dtype (one array)."""

    def __init__(
        self,
        counts: np.ndarray,
        info: SourceInfo,
        block_patterns: int | None = None,
        real_dtype: torch.dtype = torch.float32,
        has_unmeasured: bool | None = None,
    ) -> None:
        self.counts = counts
        self.info = info
        self.block_patterns = max(1, int(block_patterns or max(info.n, 1)))
        self.real_dtype = real_dtype
        if has_unmeasured is None:
            self.scan()
        else:
            self.has_unmeasured = bool(has_unmeasured)

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self.counts[start:stop]

    def take(self, idx: np.ndarray) -> np.ndarray:
        return self.counts[np.asarray(idx, dtype=np.int64)]

    def resident_rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.counts, np.asarray(idx, dtype=np.int64)

    def chunks(self) -> Generator[tuple[int, np.ndarray], None, None]:
        m, n = self.window
        step = max(1, CHUNK_BYTES // (m * n * max(np.dtype(self.dtype).itemsize, 4)))
        for s in range(0, self.n, step):
            yield s, self.counts[s : s + step]

    def visits(self, order: np.ndarray) -> Generator[tuple[int, np.ndarray], None, None]:
        counts = self.counts
        for j in np.asarray(order, dtype=np.int64).tolist():
            yield j, counts[j]

    def resident(
        self, order: np.ndarray, ahead: bool = True
    ) -> Generator[tuple[np.ndarray, int, np.ndarray], None, None]:
        """Every row is resident: one run, the whole ``order``."""
        yield self.counts, 0, np.asarray(order, dtype=np.int64)

    @classmethod
    def load(
        cls,
        dataset: PtychoDataset,
        angle: int = 0,
        indices: np.ndarray | None = None,
        block_patterns: int | None = None,
        real_dtype: torch.dtype = torch.float32,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> MemorySource:
        """Read tiles ``indices`` (all by default) of ``angle``, chunk by chunk, into one array.

        An in-memory dataset read whole, as stored, is used as it is (no copy).
        """
        reader = frame_reader(dataset, angle)
        idx = np.arange(dataset.n_tiles, dtype=np.int64) if indices is None else indices
        idx = np.asarray(idx, dtype=np.int64)
        info = source_info(reader, dataset, idx, angle)
        array = reader.array
        as_stored = reader.tiles is None and reader.pre is None and reader.fallback is None
        if array is not None and as_stored and np.array_equal(idx, np.arange(len(array))):
            counts = array
        else:
            counts = reader.read(idx, chunk_bytes)
        return cls(counts, info, block_patterns, real_dtype)


def source_info(
    reader: FrameReader, dataset: PtychoDataset, indices: np.ndarray, angle: int
) -> SourceInfo:
    """Return the ``SourceInfo`` of ``indices`` read through ``reader``."""
    return SourceInfo(
        len(indices), reader.window, np.dtype(reader.dtype), reader.rule,
        np.asarray(indices, dtype=np.int64), dataset.geometry, angle,
    )  # fmt: skip
