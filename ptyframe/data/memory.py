"""Know before a run starts whether it fits in memory: estimate, available memory, plan.

``estimate(...)`` adds up what a run will hold (bytes):

* patterns: float amplitudes (``ptyframe.data.measurements``): ``n M^2`` values of the run's
  real dtype, plus the mask (one ``[M, M]`` shared by every pattern; a mask per pattern,
  ``n M^2`` bools, when a saturation level makes it differ between patterns); the counts in
  their stored dtype (``n M^2`` of its size; ``RunShape.holds_counts``: an engine that
  streams, ``Capabilities.streams``, on data stored narrower than the run's real dtype),
  streamed only two blocks of them; either way of counts, the amplitude feed's ring
  (``ptyframe.data.feed``, ``RING`` chunks of ``CHUNK_BYTES`` and their masks);
* object ``S H W`` and probe ``K M^2`` complex values;
* the engine's own buffers, per family, as read from their code (``c`` bytes per complex
  value, ``P = M^2``, ``O = S H W``, ``B`` the batch size):

  ========================================  =================================================
  per-position PIE (epie, rpie, pine, mpie)  ``8 K P c`` scratch, ``n 2M c`` sub-pixel ramps;
                                            mpie ``4 (O + K P) c`` momentum buffers
  minibatch (minibatch_pie, lsqml)          ``12 B K P c`` batch arrays, ``2 O c`` object sums
  autodiff                                  ``4 (O + K P) c`` parameters, gradients, Adam
                                            moments, ``16 B K P c`` autograd intermediates
  raar, dm                                  ``3 n K P c``: every exit wave and two projections
  a denoising prior (rho > 0)               ``3 O c`` and two layers of tile activations
  ========================================  =================================================

* loading: one chunk of patterns in its conversion temporaries (``8 CHUNK_BYTES``);
* the process itself as it stands (``/proc/self/statm``: the imports, the dataset's
  metadata).

``available_bytes()`` is ``MemAvailable`` of ``/proc/meminfo``, or less where a cgroup limit
(v2 ``memory.max``, v1 ``memory.limit_in_bytes``) leaves less, or the value of the
environment variable ``PTYFRAME_MEMORY_AVAILABLE`` (``8GiB``, ``500MB``, bytes: what tests
and a user on a shared node set). ``plan(...)`` then keeps the run in memory, switches it to
streaming (``data.stream=auto``, with a log line) or stops it before any work with one error
line naming the fixes (``data.stream=true``, ``data.max_tiles=N``, ``data.bin=2``). A run fits
when what it adds stays within ``FIT_FRACTION`` of what is available (a margin for the
allocator and the estimate's approximations).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptyframe.errors import ConfigError

#: A run fits when the memory it adds is at most this fraction of the available memory.
FIT_FRACTION = 0.9
#: Streamed: a block at most this many bytes, and at most this fraction of what is available
#: (two blocks are in memory: the one in use and the one being read).
BLOCK_BYTES_MAX = 32 * 2**20
BLOCK_FRACTION = 1 / 16
ENV = "PTYFRAME_MEMORY_AVAILABLE"
_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 2**10})
_UNITS.update({"m": 2**20, "g": 2**30, "t": 2**40})


class InsufficientMemoryError(ConfigError):
    """The run does not fit in the memory available; the message names the fixes."""


def parse_bytes(text: str) -> int:
    """Return the bytes of ``"8GiB"``, ``"500 MB"``, ``"1e9"`` (raise ``ConfigError``)."""
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise ConfigError(f"{ENV}={text!r}: give bytes, e.g. 8GiB, 500MB or 2000000000")
    return int(float(m.group(1)) * _UNITS[unit])


def gib(n: float) -> str:
    """Return ``n`` bytes as ``"1.23 GB"`` or ``"45 MB"`` (decimal units)."""
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_bytes() -> int:
    """Return the memory this process may still take (module docstring)."""
    env = os.environ.get(ENV)
    if env:
        return parse_bytes(env)
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    for limit_f, used_f in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit, used = _read_int(limit_f), _read_int(used_f)
        if limit is not None and used is not None and limit < 2**60:
            avail = limit - used if avail is None else min(avail, limit - used)
    return max(int(avail), 0) if avail is not None else 2**62


def process_bytes() -> int:
    """Return this process's resident memory now (``/proc/self/statm``; 0 where unknown)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def choose_block_patterns(row_bytes: int, n: int, available: int | None = None) -> int:
    """Return the patterns per streamed block: ``BLOCK_BYTES_MAX`` of stored rows, less only
    where that is more than ``BLOCK_FRACTION`` of the memory available.

    The block size sets the visiting order (``patterns.block_order``), so it depends on the
    data alone wherever memory allows (the same bits on any machine with enough of it); a
    run records the size it used (``stream_block_patterns`` in ``recon.h5``), and
    ``data.block_patterns`` fixes it.
    """
    avail = available_bytes() if available is None else int(available)
    target = min(BLOCK_BYTES_MAX, int(avail * BLOCK_FRACTION))
    return int(max(1, min(n, target // max(int(row_bytes), 1))))


@dataclass
class RunShape:
    """What the estimate needs to know about a run (one process's share)."""

    engine: str
    n: int  # patterns of this process
    window: tuple[int, int]
    object_px: int  # S H W
    modes: int = 1
    complex_bytes: int = 8
    stored_bytes: int = 4  # bytes per stored value
    mask_per_pattern: bool = False
    #: Held in memory as the stored counts (a pattern source), not as float amplitudes.
    holds_counts: bool = False
    batch: int = 64
    prior: bool = False
    prior_tile_px: int = 512 + 2 * 32
    prior_channels: int = 64


@dataclass
class Estimate:
    """The bytes a run will hold, by part (``parts``), and how the patterns are held."""

    parts: dict[str, int] = field(default_factory=dict)
    patterns_as: str = ""

    @property
    def total(self) -> int:
        return int(sum(self.parts.values()))

    @property
    def adds(self) -> int:
        """Bytes beyond what the process already holds."""
        return self.total - self.parts.get("process", 0)

    def line(self) -> str:
        """Return the one-line summary the runner logs."""
        parts = ", ".join(f"{k} {gib(v)}" for k, v in self.parts.items() if v)
        head = f"memory: this run needs about {gib(self.total)}"
        return f"{head} ({parts}; patterns as {self.patterns_as})"


def engine_bytes(s: RunShape) -> int:
    """Return the engine's own buffers (module docstring's table)."""
    m, n_px = s.window
    p, k, c, o = m * n_px, s.modes, s.complex_bytes, s.object_px
    e = s.engine
    if e in ("epie", "rpie", "pine", "mpie"):
        out = 8 * k * p * c + s.n * (m + n_px) * c
        if e == "mpie":
            out += 4 * (o + k * p) * c
    elif e in ("minibatch_pie", "lsqml"):
        out = 12 * s.batch * k * p * c + 2 * o * c
    elif e == "autodiff":
        out = 4 * (o + k * p) * c + 16 * s.batch * k * p * c
    elif e in ("raar", "dm"):
        out = 3 * s.n * k * p * c
    elif e == "hio":
        out = 4 * p * c
    else:  # an engine from elsewhere: counted as a minibatch engine
        out = 12 * s.batch * k * p * c + 2 * o * c
    if s.prior:
        out += 3 * o * c + 2 * s.prior_channels * s.prior_tile_px**2 * 4
    return int(out)


def estimate(
    s: RunShape, *, stream: bool = False, block: int = 0, base: int | None = None
) -> Estimate:
    """Return the estimate of a run of shape ``s`` (module docstring).

    ``stream`` False: float amplitudes, or the stored counts (``s.holds_counts``); ``stream``
    True: two blocks of ``block`` patterns. Counts add the amplitude feed's ring.
    """
    from ptyframe.data import feed
    from ptyframe.data.counts import CHUNK_BYTES

    m, n_px = s.window
    p = m * n_px
    real = s.complex_bytes // 2
    mask = s.n * p if s.mask_per_pattern else p
    ring = feed.RING * feed.CHUNK_BYTES * (real + 1) // real
    if stream:
        pats = 2 * max(block, 1) * p * s.stored_bytes + p + ring
        how = f"two streamed blocks of {block}"
    elif s.holds_counts:
        pats, how = s.n * p * s.stored_bytes + p + ring, "stored counts"
    else:
        pats, how = s.n * p * real + mask, f"float{8 * real} amplitudes"
    parts = {
        "patterns": int(pats),
        "object": int(s.object_px * s.complex_bytes),
        "probe": int(s.modes * p * s.complex_bytes),
        "engine": engine_bytes(s),
        "loading": int(8 * CHUNK_BYTES),
        "process": int(process_bytes() if base is None else base),
    }
    return Estimate(parts, how)


@dataclass
class Plan:
    """What the run does: ``stream`` or not (in blocks of ``block``), with the estimate it
    chose and the log line."""

    stream: bool
    estimate: Estimate
    message: str
    block: int = 0
    #: In memory as the stored counts (``RunShape.holds_counts``), not float amplitudes.
    counts: bool = False


def max_tiles_that_fit(s: RunShape, available: int) -> int:
    """Return the largest pattern count whose in-memory estimate fits (0: none)."""
    lo, hi = 0, s.n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        e = estimate(RunShape(**{**s.__dict__, "n": mid}))
        if e.adds <= FIT_FRACTION * available:
            lo = mid
        else:
            hi = mid - 1
    return lo


def plan(
    s: RunShape,
    stream: str,
    available: int,
    block: int | None = None,
    can_stream: bool = False,
) -> Plan:
    """Decide how the run holds its patterns, or raise ``InsufficientMemoryError``.

    ``stream`` is ``data.stream``: ``"true"``, ``"false"`` or ``"auto"``. ``can_stream``:
    the engine reads a pattern source (``Capabilities.streams``).
    """
    row = s.window[0] * s.window[1] * s.stored_bytes
    blk = int(block) if block else choose_block_patterns(row, s.n, available)
    mem = estimate(s)
    streamed = estimate(s, stream=True, block=blk)
    fits_mem = mem.adds <= FIT_FRACTION * available
    fits_stream = streamed.adds <= FIT_FRACTION * available
    if stream == "true" and not can_stream:
        raise ConfigError(
            f"data.stream=true: engine {s.engine!r} holds every pattern in memory and cannot "
            "stream them; set data.stream=auto or false"
        )
    if stream == "true":
        if fits_stream:
            return Plan(True, streamed, streamed.line(), blk)
        raise InsufficientMemoryError(_refusal(s, streamed, available, streamed=True))
    if fits_mem:
        return Plan(False, mem, mem.line(), counts=s.holds_counts)
    if stream == "auto" and can_stream and fits_stream:
        why = (
            f"{gib(mem.total)} in memory does not fit in {gib(available)} available: "
            f"streaming the patterns from the file in blocks of {blk} (data.stream=auto)"
        )
        return Plan(True, streamed, f"{streamed.line()}; {why}", blk)
    raise InsufficientMemoryError(
        _refusal(s, mem, available, streamed=False, can_stream=can_stream)
    )


def _refusal(
    s: RunShape, e: Estimate, available: int, streamed: bool, can_stream: bool = True
) -> str:
    """Return the one-line refusal: what it needs, what there is, the fixes."""
    fixes = []
    if not streamed and can_stream:
        fixes.append("data.stream=true (patterns read from the file in blocks)")
    n = max_tiles_that_fit(s, available)
    if 0 < n < s.n:
        fixes.append(f"data.max_tiles={n} (the first {n} patterns)")
    fixes.append("data.bin=2 (2x2 detector binning: a quarter of the pattern memory)")
    if streamed:
        fixes.append("a smaller data.block_patterns")
    parts = ", ".join(f"{k} {gib(v)}" for k, v in e.parts.items() if v)
    return (
        f"this run needs about {gib(e.total)} of memory ({parts}) but {gib(available)} is "
        f"available; nothing was run. Use {', or '.join(fixes)}"
    )


def run_shape(engine: Any, n: int, window: tuple[int, int], **kw: Any) -> RunShape:
    """Return the ``RunShape`` of ``engine`` (its config's name, batch size and prior)."""
    cfg = getattr(engine, "config", None)
    name = str(getattr(cfg, "name", "") or type(engine).__name__.lower())
    batch = int(getattr(cfg, "batch_size", 0) or getattr(cfg, "minibatch", 0) or 64)
    prior = getattr(engine, "prior", None) is not None
    shape = RunShape(name, int(n), (window[0], window[1]), batch=batch, prior=prior, **kw)
    den = getattr(getattr(engine, "prior", None), "denoiser", None)
    if den is not None and hasattr(den, "tile_px"):
        shape.prior_tile_px = int(den.tile_px) + 2 * int(getattr(den, "overlap_px", 0))
    return shape
