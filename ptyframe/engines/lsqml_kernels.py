"""Fused CPU kernels of LSQML's general group update (the numba backend), compiled with numba.

The per-pixel passes of ``ptyframe.engines.visit_sweeps.lsqml_visits`` (the torch
specification; Odstrcil, Menzel & Guizar-Sicairos, Opt. Express 26, 3108 (2018), eqs. 22-25)
for a group of ``B`` positions with ``K`` modes on windows ``M x N`` (buffer included), each
one loop over the group in place of torch's products, mode sums, window stacks and
scatters:

* ``window_product``: ``out_bk = O(window_b) u_bk`` (the exit wave of a slice; a direction's
  change of the exit wave, ``dO(window_b) u_bk``);
* ``conj_window_product``: ``out_bk = conj(O(window_b)) chi_bk`` (the chain's incident
  step, the probe direction's numerator);
* ``direction_sums``: ``num += S_b^T sum_k conj(u_bk) chi_bk``, ``w += S_b^T sum_k |u_bk|^2``
  (eqs. 24-25, the object direction's numerator and weight, scattered in position order);
* ``window_power_sum``: ``w_p += sum_b |O(window_b)|^2`` (the probe direction's weight);
* ``ramp_spectra``, ``ramp_fold``: the sub-pixel shifts' Fourier ramps applied to the
  probe's spectrum for every position, and taken off the positions' spectra and summed
  (``minibatch.BatchedWaves.probes``, ``shift_back_sum``) without forming the ramps;
* ``gram``: per position the real Gram matrix of the directions' exit-wave changes and the
  residual, ``G_ij = Re sum conj(w_i) w_j``, ``r_i = Re sum conj(w_i) chi`` (eqs. 22-23),
  accumulated in float64 without stacking the changes.

The object (one slice of the group's box, ``[h, w]``) is passed whole with the windows'
corners ``[B, 2]``, so each window row is a contiguous run (``ptyframe.engines.kernels``
module docstring). A wave ``u`` ``[Bu, K, M, N]`` with ``Bu = 1`` is one probe shared by
every position (no sub-pixel shifts). As in ``ptyframe.engines.kernels``, no Python float
enters the complex maths (the sums keep the arrays' dtype), and numpy's error model is used.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ptyframe.engines.numba_cache import compile_kernels

_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # no nnan/ninf: NaN propagate
_compiled: SimpleNamespace | None = None


def kernels() -> SimpleNamespace:
    """Return this module's kernels compiled with numba (on first use; cached on disk)."""
    global _compiled
    if _compiled is None:
        _compiled = compile_kernels(
            globals(), (), KERNELS, (Path(__file__),), "ptyframe-lsqml-kernels", _FASTMATH
        )
    return _compiled


def window_product(obj: np.ndarray, corners: np.ndarray, u: np.ndarray, out: np.ndarray) -> None:
    """``out[b, k] = obj[y_b:y_b+M, x_b:x_b+N] * u[b, k]`` for ``out`` ``[B, K, M, N]``.

    ``u`` ``[B, K, M, N]`` or ``[1, K, M, N]`` (shared); ``out`` may be ``u`` itself."""
    n_b, n_k, m, n = out.shape
    shared = u.shape[0] == 1
    for b in range(n_b):
        y, x = corners[b, 0], corners[b, 1]
        ub = 0 if shared else b
        for k in range(n_k):
            for i in range(m):
                orow = obj[y + i, x : x + n]
                urow = u[ub, k, i]
                wrow = out[b, k, i]
                for j in range(n):
                    wrow[j] = orow[j] * urow[j]


def conj_window_product(
    obj: np.ndarray, corners: np.ndarray, chi: np.ndarray, out: np.ndarray
) -> None:
    """``out[b, k] = conj(obj[y_b:y_b+M, x_b:x_b+N]) * chi[b, k]`` (``out`` may be ``chi``)."""
    n_b, n_k, m, n = out.shape
    for b in range(n_b):
        y, x = corners[b, 0], corners[b, 1]
        for k in range(n_k):
            for i in range(m):
                orow = obj[y + i, x : x + n]
                crow = chi[b, k, i]
                wrow = out[b, k, i]
                for j in range(n):
                    wrow[j] = orow[j].conjugate() * crow[j]


def direction_sums(
    corners: np.ndarray, u: np.ndarray, chi: np.ndarray, num: np.ndarray, weight: np.ndarray
) -> None:
    """Add ``sum_k conj(u_bk) chi_bk`` into ``num`` and ``sum_k |u_bk|^2`` into ``weight`` at
    each window ``b`` in turn (``num`` ``[h, w]`` complex, ``weight`` ``[h, w]`` real).

    ``u`` ``[B, K, M, N]`` or ``[1, K, M, N]`` (shared); ``chi`` ``[B, K, M, N]``."""
    n_b, n_k, m, n = chi.shape
    shared = u.shape[0] == 1
    for b in range(n_b):
        y, x = corners[b, 0], corners[b, 1]
        ub = 0 if shared else b
        for i in range(m):
            nrow = num[y + i, x : x + n]
            wrow = weight[y + i, x : x + n]
            if n_k == 1:
                urow = u[ub, 0, i]
                crow = chi[b, 0, i]
                for j in range(n):
                    z = urow[j]
                    nrow[j] += z.conjugate() * crow[j]
                    wrow[j] += z.real * z.real + z.imag * z.imag
                continue
            for j in range(n):
                z = u[ub, 0, i, j]
                s = z.conjugate() * chi[b, 0, i, j]
                p = z.real * z.real + z.imag * z.imag
                for k in range(1, n_k):
                    z = u[ub, k, i, j]
                    s += z.conjugate() * chi[b, k, i, j]
                    p += z.real * z.real + z.imag * z.imag
                nrow[j] += s
                wrow[j] += p


def window_power_sum(obj: np.ndarray, corners: np.ndarray, m: int, n: int, out: np.ndarray) -> None:
    """Add ``|obj[y_b:y_b+M, x_b:x_b+N]|^2`` of every window into ``out`` ``[M, N]``."""
    for b in range(corners.shape[0]):
        y, x = corners[b, 0], corners[b, 1]
        for i in range(m):
            orow = obj[y + i, x : x + n]
            wrow = out[i]
            for j in range(n):
                z = orow[j]
                wrow[j] += z.real * z.real + z.imag * z.imag


def gram(effects: np.ndarray, chi: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` ``[B, n + 1, n + 1]`` (float64) with each position's real Gram matrix of
    ``effects`` ``[n, B, K, M, N]`` and ``chi`` ``[B, K, M, N]`` (``w_n = chi``):
    ``out[b, i, j] = Re sum conj(w_ib) w_jb`` for ``i <= n - 1``, ``j <= n`` (mirrored;
    ``out[b, n, n]`` is left 0: the residual's own norm is not needed).

    Each pair is one pass over a row (in cache), its products summed in float64."""
    n_e, n_b, n_k, m, n = effects.shape
    out[:] = 0.0
    for b in range(n_b):
        for k in range(n_k):
            for i in range(m):
                for p in range(n_e):
                    prow = effects[p, b, k, i]
                    for q in range(p, n_e + 1):
                        qrow = chi[b, k, i] if q == n_e else effects[q, b, k, i]
                        acc = 0.0
                        for j in range(n):
                            acc += prow[j].real * qrow[j].real + prow[j].imag * qrow[j].imag
                        out[b, p, q] += acc
        for p in range(n_e + 1):
            for q in range(p):
                out[b, p, q] = out[b, q, p]


def ramp_spectra(
    spec: np.ndarray, ry: np.ndarray, rx: np.ndarray, idx: np.ndarray, out: np.ndarray
) -> None:
    """``out[b, k] = spec[k] * (ry[idx_b] rx[idx_b]^T)``: the spectra of the shifted probes
    ``F(T_f_b P) = F(P) r_f_b`` (``minibatch.BatchedWaves.probes`` before its inverse
    transform) for ``spec`` ``[K, M, N]`` and the separable ramps ``ry`` ``[n, M]``,
    ``rx`` ``[n, N]`` of the scan, without the ramps' ``[B, M, N]`` product."""
    n_b, n_k, m, n = out.shape
    for b in range(n_b):
        yrow = ry[idx[b]]
        xrow = rx[idx[b]]
        for k in range(n_k):
            for i in range(m):
                fy = yrow[i]
                srow = spec[k, i]
                wrow = out[b, k, i]
                for j in range(n):
                    wrow[j] = srow[j] * (fy * xrow[j])


def ramp_fold(
    spec: np.ndarray, ry: np.ndarray, rx: np.ndarray, idx: np.ndarray, out: np.ndarray
) -> None:
    """``out[k] = sum_b spec[b, k] * conj(ry[idx_b] rx[idx_b]^T)`` (``out`` ``[K, M, N]``
    overwritten): the spectrum of ``sum_b T_-f_b x_b`` from ``spec = F(x)``
    (``minibatch.BatchedWaves.shift_back_sum`` before its inverse transform)."""
    n_b, n_k, m, n = spec.shape
    out[:] = 0
    for b in range(n_b):
        yrow = ry[idx[b]]
        xrow = rx[idx[b]]
        for k in range(n_k):
            for i in range(m):
                fy = yrow[i]
                srow = spec[b, k, i]
                wrow = out[k, i]
                for j in range(n):
                    wrow[j] += srow[j] * (fy * xrow[j]).conjugate()


#: Compiled in place by ``kernels()``.
KERNELS = (
    "ramp_spectra",
    "ramp_fold",
    "window_product",
    "conj_window_product",
    "direction_sums",
    "window_power_sum",
    "gram",
)
