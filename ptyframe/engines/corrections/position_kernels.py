"""Compute a position's five least-squares sums in one pass (numba), for the fused PIE sweep.

The kernels fill the same numbers as the torch reference
``ptyframe.engines.corrections.positions.position_sums`` (tested equal): for the object
window ``O_r = obj[y0:y0+M, x0:x0+N]``, the probe modes ``P_k`` and ``chi_k = psi'_k - psi_k``
(``d``), with ``w = sum_k |P_k|^2``, ``q = sum_k conj(P_k) chi_k`` and the window gradients
``g_y, g_x`` of ``O_r`` (central differences ``(O[i+1] - O[i-1]) / 2`` inside the window,
one-sided ``O[1] - O[0]`` and ``O[M-1] - O[M-2]`` on its edges, as ``torch.gradient``)::

    out += [ sum w |g_y|^2,  sum w |g_x|^2,  sum w Re(conj(g_y) g_x),
             sum Re(conj(g_y) q),  sum Re(conj(g_x) q) ]

``out`` is a float64 array of 5 (a row of the correction's ``[N, 5]`` sums, so the sweep
passes ``sums[j]``). Call them after ``dpsi = F^-1(Psi' - Psi)`` and BEFORE the update
kernel changes the object window. The style of ``ptyframe.engines.pie_kernels``: the object
passed whole with its corner (contiguous rows vectorise), every scalar of the arrays' real
dtype (``half`` = 0.5 in it), sums per row in that dtype and over rows in float64. The
window needs ``M, N >= 2``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ptyframe.engines.numba_cache import compile_kernels

#: the fast-math flags of the PIE kernels: no nnan/ninf, so NaN propagates
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
_compiled: SimpleNamespace | None = None


def available() -> bool:
    """Return True when numba is importable (the kernels can be compiled)."""
    return importlib.util.find_spec("numba") is not None


def kernels() -> SimpleNamespace:
    """Return the kernels compiled with numba (on first use; cached on disk)."""
    global _compiled
    if _compiled is None:
        _compiled = compile_kernels(
            globals(), HELPERS, KERNELS, (Path(__file__),), "ptyframe-position-kernels", FASTMATH
        )
    return _compiled


def half_of(dtype: np.dtype) -> np.floating:
    """Return 0.5 in the real dtype of the complex ``dtype``."""
    return (np.float32 if np.dtype(dtype) == np.complex64 else np.float64)(0.5)


def _edge(rp, rm, rc, p, d, i, j, jp, jm, hy, hx, n_modes, tot):
    """Add pixel ``(i, j)`` of a window edge column (one-sided x difference) to ``tot``."""
    gy = (rp[j] - rm[j]) * hy
    gx = (rc[jp] - rc[jm]) * hx
    b = p[0, i, j]
    w = b.real * b.real + b.imag * b.imag
    q = b.conjugate() * d[0, i, j]
    for k in range(1, n_modes):
        b = p[k, i, j]
        w += b.real * b.real + b.imag * b.imag
        q += b.conjugate() * d[k, i, j]
    tot[0] += w * (gy.real * gy.real + gy.imag * gy.imag)
    tot[1] += w * (gx.real * gx.real + gx.imag * gx.imag)
    tot[2] += w * (gy.real * gx.real + gy.imag * gx.imag)
    tot[3] += gy.real * q.real + gy.imag * q.imag
    tot[4] += gx.real * q.real + gx.imag * q.imag


def _rows(m, i, half):
    """Return ``(i + 1, i - 1, h_y)`` of row ``i``: clamped neighbours and the y stencil factor."""
    one = half + half
    ip = i + 1 if i < m - 1 else i
    im = i - 1 if i > 0 else i
    hy = half if (i > 0 and i < m - 1) else one
    return ip, im, hy


def position_sums1(obj, y0, x0, p, d, out, half):
    """The five sums (module docstring) for one probe mode: ``p``, ``d`` ``[M, N]``.

    The window's first and last columns (one-sided x differences) are taken apart from the
    interior loop, which then has no branch and vectorises; the stencil factors (1/2 inside)
    multiply the row sums instead of every pixel.
    """
    m, n = p.shape
    tot = np.zeros(5)
    p3 = p[np.newaxis, :, :]  # views: the sweep's buffers may have padded rows
    d3 = d[np.newaxis, :, :]
    one = half + half
    for i in range(m):
        ip, im, hy = _rows(m, i, half)
        rp = obj[y0 + ip, x0 : x0 + n]
        rm = obj[y0 + im, x0 : x0 + n]
        rc = obj[y0 + i, x0 : x0 + n]
        _edge(rp, rm, rc, p3, d3, i, 0, 1, 0, hy, one, 1, tot)
        _edge(rp, rm, rc, p3, d3, i, n - 1, n - 1, n - 2, hy, one, 1, tot)
        prow = p[i]
        drow = d[i]
        zero = half - half
        s0 = zero
        s1 = zero
        s2 = zero
        s3 = zero
        s4 = zero
        for j in range(1, n - 1):
            gy = rp[j] - rm[j]
            gx = rc[j + 1] - rc[j - 1]
            b = prow[j]
            w = b.real * b.real + b.imag * b.imag
            q = b.conjugate() * drow[j]
            s0 += w * (gy.real * gy.real + gy.imag * gy.imag)
            s1 += w * (gx.real * gx.real + gx.imag * gx.imag)
            s2 += w * (gy.real * gx.real + gy.imag * gx.imag)
            s3 += gy.real * q.real + gy.imag * q.imag
            s4 += gx.real * q.real + gx.imag * q.imag
        tot[0] += s0 * (hy * hy)
        tot[1] += s1 * (half * half)
        tot[2] += s2 * (hy * half)
        tot[3] += s3 * hy
        tot[4] += s4 * half
    for c in range(5):
        out[c] += tot[c]


def position_sums(obj, y0, x0, p, d, out, half):
    """The five sums for ``K`` probe modes: ``p``, ``d`` ``[K, M, N]``."""
    n_modes, m, n = p.shape
    tot = np.zeros(5)
    one = half + half
    for i in range(m):
        ip, im, hy = _rows(m, i, half)
        rp = obj[y0 + ip, x0 : x0 + n]
        rm = obj[y0 + im, x0 : x0 + n]
        rc = obj[y0 + i, x0 : x0 + n]
        _edge(rp, rm, rc, p, d, i, 0, 1, 0, hy, one, n_modes, tot)
        _edge(rp, rm, rc, p, d, i, n - 1, n - 1, n - 2, hy, one, n_modes, tot)
        zero = half - half
        s0 = zero
        s1 = zero
        s2 = zero
        s3 = zero
        s4 = zero
        for j in range(1, n - 1):
            gy = rp[j] - rm[j]
            gx = rc[j + 1] - rc[j - 1]
            b = p[0, i, j]
            w = b.real * b.real + b.imag * b.imag
            q = b.conjugate() * d[0, i, j]
            for k in range(1, n_modes):
                b = p[k, i, j]
                w += b.real * b.real + b.imag * b.imag
                q += b.conjugate() * d[k, i, j]
            s0 += w * (gy.real * gy.real + gy.imag * gy.imag)
            s1 += w * (gx.real * gx.real + gx.imag * gx.imag)
            s2 += w * (gy.real * gx.real + gy.imag * gx.imag)
            s3 += gy.real * q.real + gy.imag * q.imag
            s4 += gx.real * q.real + gx.imag * q.imag
        tot[0] += s0 * (hy * hy)
        tot[1] += s1 * (half * half)
        tot[2] += s2 * (hy * half)
        tot[3] += s3 * hy
        tot[4] += s4 * half
    for c in range(5):
        out[c] += tot[c]


HELPERS = ("_edge", "_rows")
KERNELS = ("position_sums1", "position_sums")

__all__ = ["available", "half_of", "kernels"]
