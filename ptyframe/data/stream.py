"""Stream the patterns of a run from its HDF5 file, block by block, one block read ahead.

``StreamedSource`` is the pattern source (``ptyframe.data.patterns``) of a scan larger than
memory (``data.stream=true``): the process's patterns are split into blocks of
``block_patterns`` consecutive tiles (scan order), and only two blocks are in memory at a
time: the one in use and the next, which a background thread reads (h5py, a chunk cache of
one block) while the engine works on the current one. The two block buffers are allocated
once and reused, so a sweep allocates no pattern memory.

``order(seed, epoch)`` keeps the blocks in scan order and shuffles the positions inside each
block (``patterns.block_order``); ``visits(order)`` and ``blocks()`` then read each block
once per sweep, in order. A ``MemorySource`` given the same ``block_patterns`` visits in the
same order, so a streamed and an in-memory run give the same bits. A row yielded by
``visits`` (a view into a block buffer) is valid until the next one is asked for.

Errors. A block that cannot be read (a truncated file, a damaged or corrupt chunk) is read
again pattern by pattern to find the first bad one; the error (``PatternReadError``, a
``DataValidationError``) names that pattern, its tile in the file and the file, and is
raised in the thread that asked for the rows; met during a run, the run stops with its
last good state saved (status ``interrupted``). The reading thread stops at the end of a
sweep, on an error, and when the consumer stops early (the generator is closed).

A growing file (``data.follow=true``) is read the same way, through SWMR (``swmr=True``);
``extend`` adds the tiles that arrived. Under MPI each rank streams its own share
(``Distribution.shard_tiles``): the source's ``indices``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from ptyframe.data.counts import CHUNK_BYTES, FrameReader, frame_reader
from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.patterns import PatternSource, SourceInfo, source_info
from ptyframe.errors import InputLostError

log = logging.getLogger("ptyframe")

_END = object()


class PatternReadError(InputLostError):
    """A pattern could not be read from its file (truncated or damaged); names which.

    Raised during a sweep, it stops the run as an interruption does (``ptyframe.loop``):
    the last good state, a checkpoint and ``recon.h5`` are saved.
    """


class _Failure:
    """An exception raised in the reading thread, carried to the consumer."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def next_prime(n: int) -> int:
    """Return the smallest prime ``>= n`` (HDF5's chunk-cache slot count)."""
    k = max(2, int(n))
    while any(k % d == 0 for d in range(2, int(k**0.5) + 1)):
        k += 1
    return k


class StreamedSource(PatternSource):
    """Patterns read from the file block by block, one block ahead (module docstring)."""

    def __init__(
        self,
        reader: FrameReader,
        info: SourceInfo,
        block_patterns: int,
        real_dtype: torch.dtype = torch.float32,
        swmr: bool = False,
        has_unmeasured: bool | None = None,
    ) -> None:
        if reader.path is None:
            raise ValueError("a StreamedSource reads from a file; this dataset is in memory")
        self.reader = reader
        self.info = info
        self.block_patterns = max(1, min(int(block_patterns), max(info.n, 1)))
        self.real_dtype = real_dtype
        self.swmr = bool(swmr)
        self._buffers: list[np.ndarray] = []
        self._current: tuple[int, np.ndarray] | None = None  # (start, rows) in use
        self._sync: Any = None  # an h5py.File of the consumer's thread (rows not resident)
        self.thread: threading.Thread | None = None  # the last reading thread
        if has_unmeasured is None:
            self.scan()  # one pass over the file: statistics and masks
        else:
            self.has_unmeasured = bool(has_unmeasured)

    # ------------------------------------------------------------------ the file
    def file_kwargs(self) -> dict[str, Any]:
        """Return ``h5py.File`` options: the chunk cache (and SWMR).

        A block is read in one call, so an HDF5 chunk of one pattern (or a contiguous
        dataset) is read once per sweep: no cache (HDF5 then reads straight into the block
        buffer, one copy fewer). Chunks of several patterns may straddle two blocks: a cache
        of one block and a chunk keeps such a chunk from being read (and decompressed) twice.
        """
        m, n = self.window
        item = np.dtype(self.dtype).itemsize
        nbytes = self.block_patterns * m * n * item
        kw: dict[str, Any] = {"rdcc_nbytes": 0}
        if self.chunk_patterns() > 1:
            kw = {
                "rdcc_nbytes": int(nbytes + self.chunk_patterns() * m * n * item),
                "rdcc_nslots": next_prime(max(521, 10 * (self.block_patterns + 1))),
            }
        kw.update(self._swmr_kwargs())
        return kw

    def chunk_patterns(self) -> int:
        """Return the patterns per HDF5 chunk along the file's tile axis (1: one pattern or
        a contiguous dataset; also where the file's layout is not a plain stack)."""
        if not hasattr(self, "_chunk_patterns"):
            import h5py

            axis = {"angles_tiles": 1, "tiles": 0}.get(self.reader.layout)
            chunks = None
            if axis is not None and self.reader.path is not None:
                with h5py.File(self.reader.path, "r", **self._swmr_kwargs()) as f:
                    chunks = f[self.reader.key].chunks
            self._chunk_patterns = 1 if chunks is None or axis is None else int(chunks[axis])
        return self._chunk_patterns

    def _swmr_kwargs(self) -> dict[str, Any]:
        return {"libver": "latest", "swmr": True} if self.swmr else {}

    def _read(self, h5: Any, lo: int, hi: int, out: np.ndarray) -> None:
        """Read local patterns ``[lo, hi)`` into ``out``; raise ``PatternReadError``."""
        idx = self.indices[lo:hi]
        try:
            self.reader.read_into(h5, idx, out)
            return
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            first = exc
        for k in range(hi - lo):  # find the first pattern that cannot be read
            try:
                self.reader.read_into(h5, idx[k : k + 1], out[k : k + 1])
            except (OSError, RuntimeError, ValueError, KeyError) as exc:
                raise self._error(lo + k, exc) from None
        raise self._error(lo, first) from None

    def _error(self, j: int, exc: BaseException) -> PatternReadError:
        tile = int(self.reader.file_tiles(self.indices[j : j + 1])[0])
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
        return PatternReadError(
            f"{self.reader.path}: pattern {j} of this process (tile {tile} of "
            f"/{self.reader.key.lstrip('/')}) cannot be read ({why}); the file is truncated "
            "or damaged: copy or export it again"
        )

    def open_file(self) -> Any:
        """Return the file opened for reading, or raise ``PatternReadError`` saying why not."""
        try:
            return self.reader.open(**self.file_kwargs())
        except (OSError, RuntimeError) as exc:
            why = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise PatternReadError(
                f"{self.reader.path}: cannot be opened to stream its patterns ({why}); the "
                "file is truncated, damaged or gone: copy or export it again"
            ) from None

    def _sync_file(self) -> Any:
        if self._sync is None:
            self._sync = self.open_file()
        return self._sync

    def close(self) -> None:
        """Close the consumer's file handle (the reading thread closes its own)."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    # ------------------------------------------------------------------ access
    def _block_range(self, b: int) -> tuple[int, int]:
        lo = b * self.block_patterns
        return lo, min(lo + self.block_patterns, self.n)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Return local rows ``[start, stop)``: a view of the block in use, else read now."""
        cur = self._current
        if cur is not None and cur[0] <= start and stop <= cur[0] + len(cur[1]):
            return cur[1][start - cur[0] : stop - cur[0]]
        out = np.empty((stop - start, *self.window), dtype=self.dtype)
        self._read(self._sync_file(), start, stop, out)
        return out

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Return the rows of local indices ``idx`` (from the block in use where they are)."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), *self.window), dtype=self.dtype)
        cur = self._current
        for k, j in enumerate(idx.tolist()):
            if cur is not None and cur[0] <= j < cur[0] + len(cur[1]):
                out[k] = cur[1][j - cur[0]]
            else:
                out[k] = self.rows(j, j + 1)[0]
        return out

    def resident_rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The block in use and the local indices where it holds every row of ``idx``."""
        idx = np.asarray(idx, dtype=np.int64)
        cur = self._current
        if (
            cur is not None
            and len(idx)
            and cur[0] <= idx.min()
            and idx.max() < cur[0] + len(cur[1])
        ):
            return cur[1], idx - cur[0]
        return self.take(idx), np.arange(len(idx))

    def stream(self, seq: list[int]) -> Generator[tuple[int, np.ndarray], None, None]:
        """Yield ``(block, rows)`` for the blocks ``seq`` in order, each read one ahead.

        A background thread fills one of two buffers while the consumer uses the other;
        an error in the thread is raised here; closing the generator stops the thread.
        """
        free: queue.Queue = queue.Queue()
        for buf in self._block_buffers():
            free.put(buf)
        ready: queue.Queue = queue.Queue()
        stop = threading.Event()
        thread = threading.Thread(
            target=self._produce, args=(list(seq), free, ready, stop), daemon=True,
            name="ptyframe-prefetch",
        )  # fmt: skip
        self.thread = thread
        thread.start()
        try:
            while True:
                item = ready.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                b, buf, k = item
                self._current = (self._block_range(b)[0], buf[:k])
                yield b, buf[:k]
                self._current = None
                free.put(buf)
        finally:
            self._current = None
            stop.set()
            free.put(None)  # wake the thread if it waits for a buffer
            thread.join()

    def _produce(self, seq: list[int], free: queue.Queue, ready: queue.Queue, stop: Any) -> None:
        """The reading thread: fill free buffers with the blocks of ``seq`` in order."""
        h5 = None
        try:
            h5 = self.open_file()
            for b in seq:
                buf = free.get()
                if buf is None or stop.is_set():
                    return
                lo, hi = self._block_range(b)
                self._read(h5, lo, hi, buf[: hi - lo])
                ready.put((b, buf, hi - lo))
            ready.put(_END)
        except BaseException as exc:  # carried to the consumer's thread
            ready.put(_Failure(exc))
        finally:
            if h5 is not None:
                h5.close()

    def resident(
        self, order: np.ndarray, ahead: bool = True
    ) -> Generator[tuple[np.ndarray, int, np.ndarray], None, None]:
        """Yield ``(block rows, lo, visits)`` per run of ``order`` in one block; the rows are
        valid until the next run is asked for.

        ``ahead``: each block read one ahead by the reading thread (``stream``); False: read
        in the calling thread when it is asked for (a caller that is itself a thread ahead
        of the sweep, the amplitude feed).
        """
        runs = self.block_runs(order)
        if not ahead:
            yield from self._read_runs(runs)
            return
        it = self.stream([b for b, _ in runs])
        try:
            for (b, visits), (nb, rows) in zip(runs, it, strict=False):
                assert nb == b
                yield rows, self._block_range(b)[0], visits
        finally:
            it.close()

    def _read_runs(
        self, runs: list[tuple[int, np.ndarray]]
    ) -> Generator[tuple[np.ndarray, int, np.ndarray], None, None]:
        """``resident(ahead=False)``: read each run's block into one buffer, then yield it."""
        buf = self._block_buffers()[0]
        h5 = self.open_file()
        try:
            for b, visits in runs:
                lo, hi = self._block_range(b)
                self._read(h5, lo, hi, buf[: hi - lo])
                yield buf[: hi - lo], lo, visits
        finally:
            h5.close()

    def _block_buffers(self) -> list[np.ndarray]:
        """The two block buffers (allocated once, reused by every sweep)."""
        if not self._buffers:
            shape = (self.block_patterns, *self.window)
            self._buffers = [np.empty(shape, dtype=self.dtype) for _ in range(2)]
        return self._buffers

    def chunks(self) -> Generator[tuple[int, np.ndarray], None, None]:
        """Yield ``(start, rows)`` in scan order, each block in pieces of ``CHUNK_BYTES`` (the
        statistics' float work arrays stay that small, whatever the block)."""
        m, n = self.window
        step = max(1, CHUNK_BYTES // (m * n * max(np.dtype(self.dtype).itemsize, 4)))
        for s, rows in self.blocks():
            for k in range(0, len(rows), step):
                yield s + k, rows[k : k + step]

    def blocks(self) -> Generator[tuple[int, np.ndarray], None, None]:
        """Yield ``(start, rows)`` block by block in scan order (read one ahead)."""
        n_blocks = -(-self.n // self.block_patterns)
        for b, rows in self.stream(list(range(n_blocks))):
            yield self._block_range(b)[0], rows

    def visits(self, order: np.ndarray) -> Generator[tuple[int, np.ndarray], None, None]:
        """Yield ``(j, row)`` in ``order``; each block is read once, one block ahead.

        An ``order`` that leaves a block and comes back to it (not one of ``order``'s) is
        served, correctly but slowly, by reading the late rows one by one.
        """
        order = np.asarray(order, dtype=np.int64)
        bid = order // self.block_patterns
        first = np.unique(bid, return_index=True)[1]
        seq = bid[np.sort(first)].tolist()
        it = self.stream(seq)
        try:
            done: set[int] = set()
            cur_b, cur = -1, None
            for j, b in zip(order.tolist(), bid.tolist(), strict=True):
                if b != cur_b:
                    if b in done:  # came back to a block already released
                        yield j, self.rows(j, j + 1)[0]
                        continue
                    nb, cur = next(it)
                    assert nb == b
                    done.add(b)
                    cur_b = b
                yield j, cur[j - b * self.block_patterns]  # type: ignore[index]
        finally:
            it.close()

    # ------------------------------------------------------------------ a growing file
    def extend(self, indices: np.ndarray, geometry: Any = None) -> None:
        """Take more tiles (a growing file: ``data.follow=true``); reopen the file."""
        idx = np.concatenate([self.indices, np.asarray(indices, dtype=np.int64)])
        self.close()
        self.info = SourceInfo(
            len(idx), self.window, self.dtype, self.rule, idx,
            geometry if geometry is not None else self.geometry, self.angle,
        )  # fmt: skip
        self.scan()


def open_source(
    dataset: PtychoDataset,
    angle: int = 0,
    indices: np.ndarray | None = None,
    *,
    stream: bool = False,
    block_patterns: int | None = None,
    real_dtype: torch.dtype = torch.float32,
) -> PatternSource:
    """Return the pattern source of ``dataset``'s tiles ``indices``: streamed or in memory.

    ``stream`` needs a file-backed dataset (a dataset held in memory is used from memory,
    with the same blocks). ``block_patterns`` None: one block in memory; streamed, see
    ``ptyframe.data.memory.choose_block_patterns``.
    """
    from ptyframe.data.memory import choose_block_patterns
    from ptyframe.data.patterns import MemorySource

    reader = frame_reader(dataset, angle)
    idx = np.arange(dataset.n_tiles, dtype=np.int64) if indices is None else indices
    idx = np.asarray(idx, dtype=np.int64)
    if not stream or reader.path is None:
        return MemorySource.load(dataset, angle, idx, block_patterns, real_dtype)
    info = source_info(reader, dataset, idx, angle)
    if block_patterns is None:
        row = int(np.prod(info.window)) * np.dtype(info.dtype).itemsize
        block_patterns = choose_block_patterns(row, info.n)
    return StreamedSource(reader, info, int(block_patterns), real_dtype)
