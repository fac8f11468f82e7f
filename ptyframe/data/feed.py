"""Feed a sweep its patterns: FFT-order amplitude rows in visiting order, formed ahead.

A sequential sweep visits its positions in ``data.order(seed, epoch)`` and, at each, needs the
measured amplitudes ``A_j`` ``[M, N]`` (FFT order, the run's real dtype) and the measured
pixels (``valid``, or None where every pixel of that pattern was measured). ``rows(data,
order)`` yields ``(j, A_j, valid_j)`` for either kind of data a run holds:

* ``Measurements`` (float amplitudes already in memory): views of its arrays, nothing
  converted, nothing copied, no thread;
* a pattern source (``ptyframe.data.patterns``: counts in their stored dtype, in memory or
  streamed from the file): an ``AmplitudeFeed`` forms the amplitudes a chunk of positions at
  a time in a background thread (``amplitude_kernels.amplitude_take``, compiled with numba,
  which releases the GIL for the whole chunk) into a small ring of reused buffers, so that
  forming them overlaps the sweep on another core. A streamed source's own reading thread
  (``ptyframe.data.stream``) reads the blocks one ahead of that: the file, the conversion and
  the sweep run at once.

The amplitudes are those of ``ptyframe.data.counts.amplitudes`` bit for bit (the kernels'
torch reference), so a run on float amplitudes and a run on the same counts held as counts
give the same bits. A row is valid until the consumer asks for the one after the next chunk
(``AmplitudeFeed``: ``ring`` chunks of ``chunk`` positions); a sweep uses each row once.

Errors. What the background thread raises (``PatternReadError`` from a stream, anything
else) is raised in the consumer's thread at the row it would have produced; closing the
generator (the sweep ends early, an interruption) stops the thread and, with it, the
stream's reading thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptyframe.data.forming import form
from ptyframe.data.measurements import Measurements
from ptyframe.data.patterns import PatternSource

#: The patterns a run holds: float amplitudes, or a source of stored counts.
PatternData = Measurements | PatternSource
#: ``(j, A_j [M, N], valid_j [M, N] or None)``: one visit's pattern, host arrays.
Row = tuple[int, np.ndarray, "np.ndarray | None"]
#: Bytes of amplitudes per chunk of the feed (a chunk of ``128 x 128`` float32 rows: 32 rows).
CHUNK_BYTES = 2 * 2**20
#: Chunks in the ring: one in use, one being formed, one ready.
RING = 3
_END = object()


class _Failure:
    """An exception of the feed's thread, carried to the consumer."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def rows(data: PatternData, order: np.ndarray | list[int]) -> Generator[Row, None, None]:
    """Yield ``(j, A_j, valid_j)`` for ``j`` in ``order`` as host numpy arrays (module
    docstring). ``data`` on a GPU has no host rows: use ``tensor_rows``."""
    if isinstance(data, Measurements):
        return _views(data, order)
    return amplitude_feed(data).rows(order)


def amplitude_feed(source: PatternSource) -> AmplitudeFeed:
    """Return ``source``'s amplitude feed, made once and kept on the source (its ring of
    buffers serves every sweep)."""
    feed = source.feed_cache
    if not isinstance(feed, AmplitudeFeed):
        feed = source.feed_cache = AmplitudeFeed(source)
    return feed


def _views(meas: Measurements, order: np.ndarray | list[int]) -> Generator[Row, None, None]:
    """Yield views of ``meas``'s arrays in ``order`` (nothing formed, nothing copied)."""
    amps = meas.amplitudes.numpy()
    valid = None if meas.valid is None else meas.valid.numpy()
    for j in np.asarray(order, dtype=np.int64).tolist():
        yield j, amps[j], None if valid is None else valid[j]


def tensor_rows(
    data: PatternData, order: np.ndarray | list[int], device: torch.device
) -> Generator[tuple[int, torch.Tensor, torch.Tensor | None], None, None]:
    """Yield ``(j, A_j [1, M, N], valid_j [1, M, N] or None)`` on ``device`` in ``order``.

    Measurements on ``device`` are indexed; rows on the host are sent one at a time (the
    torch sweep on a GPU with ``patterns_on_host``, or a pattern source).
    """
    device = torch.device(device)
    if isinstance(data, Measurements):
        amps, valid = data.amplitudes, data.valid
        host = amps.device != device
        for j in np.asarray(order, dtype=np.int64).tolist():
            if host:
                yield (j, *data.batch(torch.tensor([j]), device))
            else:
                yield j, amps[j : j + 1], None if valid is None else valid[j : j + 1]
        return
    for j, a, v in rows(data, order):
        at = torch.from_numpy(a)[None].to(device)
        yield j, at, None if v is None else torch.from_numpy(v)[None].to(device)


@dataclass
class _Chunk:
    """One buffer of the ring: ``k`` rows formed for visits ``j[:k]``."""

    amp: np.ndarray  # [C, M, N] real
    valid: np.ndarray  # [C, M, N] bool
    bad: np.ndarray  # [C] unmeasured pixels per row
    j: np.ndarray  # [C] int64


class AmplitudeFeed:
    """Form a pattern source's amplitude rows ahead of the sweep (module docstring).

    ``chunk`` positions per buffer (``CHUNK_BYTES`` of amplitudes by default), ``ring``
    buffers, allocated on the first sweep and reused by every later one. ``ahead=False``
    forms each chunk in the consumer's thread when it is needed (the same rows, the same
    order; for comparison and where no second core is free).
    """

    def __init__(
        self,
        source: PatternSource,
        chunk: int | None = None,
        ring: int = RING,
        ahead: bool = True,
        reads: bool = False,
    ) -> None:
        self.source = source
        m, n = source.window
        item = torch.empty((), dtype=source.real_dtype).element_size()
        self.chunk = max(1, int(chunk or CHUNK_BYTES // (m * n * item)))
        self.ahead = bool(ahead)
        #: The feed's thread reads a streamed source's blocks itself (no reading thread).
        self.reads = bool(reads) and self.ahead
        self.ring = max(2, int(ring)) * (3 if self.reads else 1)
        self._chunks: list[_Chunk] = []
        #: The thread of the last sweep (None before the first, or with ``ahead=False``).
        self.thread: threading.Thread | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of the ring's buffers."""
        m, n = self.source.window
        item = torch.empty((), dtype=self.source.real_dtype).element_size()
        return self.ring * self.chunk * m * n * (item + 1)

    def _ring(self) -> list[_Chunk]:
        if not self._chunks:
            shape = (self.chunk, *self.source.window)
            real = torch.empty((), dtype=self.source.real_dtype).numpy().dtype
            self._chunks = [
                _Chunk(
                    np.empty(shape, dtype=real),
                    np.empty(shape, dtype=np.bool_),
                    np.zeros(self.chunk, dtype=np.int64),
                    np.zeros(self.chunk, dtype=np.int64),
                )
                for _ in range(self.ring)
            ]
        return self._chunks

    # ------------------------------------------------------------------ forming
    def _pieces(
        self, order: np.ndarray
    ) -> Generator[tuple[np.ndarray, np.ndarray, np.ndarray], None, None]:
        """Yield ``(rows, local, js)``: up to ``chunk`` visits ``js`` whose stored rows are
        ``rows[local]``, in ``order`` (the source's resident blocks, ``resident``)."""
        c = self.chunk
        for rows, lo, seg in self.source.resident(order, ahead=not self.reads):
            for s in range(0, len(seg), c):
                js = seg[s : s + c]
                yield rows, js - lo, js

    def _form(self, buf: _Chunk, rows: np.ndarray, local: np.ndarray, js: np.ndarray) -> int:
        """Form the rows ``rows[local]`` (visits ``js``) into ``buf``; return their count."""
        form(self.source.rule, rows, local, buf.amp, buf.valid, buf.bad)
        buf.j[: len(js)] = js
        return len(js)

    # ------------------------------------------------------------------ the sweep's rows
    def rows(self, order: np.ndarray | list[int]) -> Generator[Row, None, None]:
        """Yield ``(j, A_j, valid_j)`` in ``order`` (valid None where all were measured)."""
        order = np.asarray(order, dtype=np.int64)
        ring = self._ring()
        if not self.ahead:
            buf = ring[0]
            for rows_, local, js in self._pieces(order):
                yield from self._emit(buf, self._form(buf, rows_, local, js))
            return
        free: queue.Queue = queue.Queue()
        for buf in ring:
            free.put(buf)
        ready: queue.Queue = queue.Queue()
        stop = threading.Event()
        thread = threading.Thread(
            target=self._produce, args=(order, free, ready, stop), daemon=True,
            name="ptyframe-feed",
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
                buf, k = item
                yield from self._emit(buf, k)
                free.put(buf)
        finally:
            stop.set()
            free.put(None)  # wake the thread if it waits for a buffer
            thread.join()

    @staticmethod
    def _emit(buf: _Chunk, k: int) -> Generator[Row, None, None]:
        amp, valid = buf.amp, buf.valid
        for c, (j, bad) in enumerate(zip(buf.j[:k].tolist(), buf.bad[:k].tolist(), strict=True)):
            yield j, amp[c], valid[c] if bad else None

    def _produce(self, order: np.ndarray, free: queue.Queue, ready: queue.Queue, stop: Any) -> None:
        """The feed's thread: form the chunks of ``order`` into free buffers, in order."""
        pieces = self._pieces(order)
        try:
            for rows_, local, js in pieces:
                buf = free.get()
                if buf is None or stop.is_set():
                    return
                ready.put((buf, self._form(buf, rows_, local, js)))
            ready.put(_END)
        except BaseException as exc:  # carried to the consumer's thread, raised there
            ready.put(_Failure(exc))
        finally:
            pieces.close()  # a stream's reading thread stops with it
