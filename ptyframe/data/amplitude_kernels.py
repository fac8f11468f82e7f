"""Read a stored counts row as FFT-order amplitudes inside compiled kernels (numba).

The helpers a kernel calls to use a pattern in the dtype it was stored in (``uint16``,
``uint32``, ``float16``, ``float32``, ...), centred as stored, with the square root taken on
the fly, instead of reading a float amplitude array prepared for the whole scan. They apply
the ``PixelRule`` of ``ptyframe.data.counts`` (whose ``amplitudes`` is their torch
reference; ``tests/test_patterns.py`` holds them equal bit for bit)::

    x     = float32(c)   (float32(c)^2 for stored magnitudes)
    valid = x >= 0 and mask and x < saturation
    A     = sqrt(x) if valid else 0          (float32, then the output's dtype)

FFT order: the zero frequency of a centred row sits at ``[M // 2, N // 2]``; pixel ``(i, j)``
of the FFT-order array is pixel ``((i + M // 2) % M, (j + N // 2) % N)`` of the centred one
(``ifftshift``, ``fft_source``).

``sqrt`` is the correctly rounded float32 square root: a kernel that inlines
``stored_amplitude`` must be compiled without numba's ``afn`` fast-math flag (approximate
functions), which ``ptyframe.engines.kernels`` uses; such a kernel calls
``amplitude_row`` (compiled here without fast-math) into a scratch row instead.

``kernels()`` compiles them with numba on first use (``cache=True``, ``nogil=True``); the
plain Python functions are the same code, usable without numba (slowly) and in tests.
A kernel compiled elsewhere calls ``fft_source`` and ``stored_amplitude`` per pixel (numba
inlines them), or ``amplitude_row`` once per position into a scratch row; the amplitude feed
(``ptyframe.data.feed``) converts a chunk of positions per call with ``amplitude_take``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

_compiled: SimpleNamespace | None = None


def fft_source(i, m):
    """Return the centred index of FFT-order index ``i`` on an axis of length ``m``."""
    k = i + m // 2
    return k - m if k >= m else k


def stored_amplitude(c, squared, ok, saturation):
    """Return ``(A, valid)`` of one stored value ``c`` (float32 ``A``).

    ``ok`` is the shared mask's value at that pixel (True where no mask), ``saturation`` a
    float32 (``+inf`` for none), ``squared`` True for stored magnitudes.
    """
    v = np.float32(c)
    x = v * v if squared else v
    if v >= np.float32(0.0) and ok and x < saturation:
        return np.float32(math.sqrt(x)), True
    return np.float32(0.0), False


def amplitude_row(counts, mask, use_mask, saturation, squared, amp, valid):
    """Write the FFT-order amplitudes of one centred stored row ``counts`` ``[M, N]``.

    ``amp`` ``[M, N]`` real (float32 or float64: the float32 value is converted), ``valid``
    ``[M, N]`` bool; ``mask`` ``[M, N]`` bool, centred (read only when ``use_mask``);
    ``saturation`` float32. Returns the number of unmeasured pixels.

    Each FFT-order row is two contiguous runs of a centred row (``fft_source``: columns
    ``[0, N - N//2)`` come from ``[N//2, N)``, the rest from ``[0, N//2)``), each converted
    by ``amplitude_run``, a branch-free loop the compiler vectorises.
    """
    m, n = counts.shape
    h = n // 2
    bad = 0
    for i in range(m):
        si = fft_source(i, m)
        crow = counts[si]
        mrow = mask[si]
        arow = amp[i]
        vrow = valid[i]
        bad += amplitude_run(
            crow[h:], mrow[h:], use_mask, saturation, squared, arow[: n - h], vrow[: n - h]
        )
        bad += amplitude_run(
            crow[:h], mrow[:h], use_mask, saturation, squared, arow[n - h :], vrow[n - h :]
        )
    return bad


def amplitude_run(c, mk, use_mask, saturation, squared, a, v):
    """``a[j], v[j] = stored_amplitude(c[j], squared, mk[j] or not use_mask, saturation)``
    over a contiguous run; returns the unmeasured count."""
    bad = np.int64(0)
    free = not use_mask
    zero = np.float32(0.0)
    for j in range(c.shape[0]):
        s = np.float32(c[j])
        x = s * s if squared else s
        ok = (s >= zero) & (mk[j] | free) & (x < saturation)
        a[j] = np.float32(math.sqrt(x)) if ok else zero
        v[j] = ok
        bad += np.int64(not ok)
    return bad


def amplitude_take(rows, idx, mask, use_mask, saturation, squared, amp, valid, bad):
    """Write the FFT-order amplitudes of rows ``rows[idx[c]]`` into ``amp[c]``, ``valid[c]``.

    ``rows`` ``[n, M, N]`` stored, centred; ``idx`` ``[k]`` int64; ``amp`` ``[>= k, M, N]``
    real, ``valid`` ``[>= k, M, N]`` bool; ``bad[c]`` the unmeasured pixels of row ``c``
    (``amplitude_row`` for each, in one call: a chunk of positions converted with the GIL
    released throughout).
    """
    for c in range(idx.shape[0]):
        bad[c] = amplitude_row(rows[idx[c]], mask, use_mask, saturation, squared, amp[c], valid[c])


HELPERS = ("fft_source", "stored_amplitude", "amplitude_run", "amplitude_row")
KERNELS = ("amplitude_row", "amplitude_take")


def kernels() -> SimpleNamespace:
    """Return the helpers compiled with numba (on first use; cached on disk)."""
    global _compiled
    if _compiled is None:
        import numba

        jit = numba.njit(cache=True, nogil=True, error_model="numpy")
        for name in HELPERS:  # called by the kernels: compiled first, in place
            if not isinstance(globals()[name], numba.core.dispatcher.Dispatcher):
                globals()[name] = jit(globals()[name])
        _compiled = SimpleNamespace(
            **{name: globals()[name] for name in HELPERS},
            **{name: jit(globals()[name]) for name in KERNELS if name not in HELPERS},
        )
    return _compiled


def kernel_row(row: np.ndarray) -> np.ndarray:
    """Return ``row`` as a kernel takes it: float16 (which numba cannot read) as float32,
    exactly; every other dtype unchanged (no copy)."""
    return row.astype(np.float32) if row.dtype == np.float16 else row


def no_mask(window: tuple[int, int]) -> np.ndarray:
    """Return a ``[M, N]`` bool array of True to pass as ``mask`` when there is none."""
    return np.ones(window, dtype=bool)
