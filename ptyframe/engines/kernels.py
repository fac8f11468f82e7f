"""Fused CPU kernels for one PIE position (the numba backend), compiled with numba.

The per-position PIE update is three passes over the window, each one loop here instead of
a dozen torch calls (PIE's time on a CPU goes to elementwise complex maths, not to FFTs):

1. ``exit_wave``: ``psi_k = O_r P_k`` (and ``|O_r|^2``, ``sum_k |P_k|^2`` for the maxima);
2. ``modulus_delta`` (after ``Psi = F psi``): ``Psi' - Psi`` in place (scaled for the unscaled
   inverse DFT), exactly the rule of
   ``ptyframe.physics.projection.detector_delta`` (modulus replacement of the mode sum,
   ``Xi(0) = 1``, unmeasured pixels left free) and the amplitude error of the position;
3. ``update`` (after ``dpsi = F^-1 (Psi' - Psi)``): the object and probe steps of
   ``ptyframe.engines.rules.pie_update`` (both from the values before this position's
   update), with the coefficients of the same ``rules.pie_coefficients``, compiled.

The torch functions they compile are the specification; tests hold each kernel equal to it.
What makes them fast (on small windows, one thread):

* the object is passed whole with the window's corner ``(y0, x0)``: a numpy view of the
  window is a strided 2-D array that numba does not vectorise, its rows ``obj[y0 + i,
  x0:x0 + n]`` are contiguous and it does;
* the new probe is written to another buffer than the one read (the caller alternates two):
  updating it in place makes the arrays overlap, and the compiled loop then falls back to
  scalar code;
* numpy's error model (a division by zero gives inf/NaN; the kernels never divide by a
  zero they did not guard): Python's raises ``ZeroDivisionError`` from inside the loop,
  a branch per division that keeps it scalar (rPIE's per-pixel steps the most);
* every scalar is of the arrays' real dtype: a Python float is float64 in numba and would
  turn complex64 arithmetic into complex128. The per-position coefficients are computed
  inside the update kernels (``rules.pie_coefficients``) from the sweep's ``PieRule.array``
  of the real dtype and the position's maxima, so no Python scalar crosses per position;
* the maxima ``max|O_r|^2`` and ``max sum_k |P_k|^2`` of one mode are taken inside
  ``exit_wave1`` as an unsigned-integer max of the squared moduli's bit patterns (numba
  compiles a float max-reduction with NaN propagation to scalar code; the integer one is
  vectorised and still propagates NaN, no ``nnan`` fast-math flag);
* the transforms are unscaled DFTs planned once (``ptyframe.engines.pie_fft``): the
  ``1/sqrt(N)`` and ``1/N`` factors of the unitary transforms ride on the modulus and ramp
  kernels' passes (their ``inv_s``, ``inv_n``, ``scale`` arguments).

``kernels()`` compiles them with numba on first use. Arrays are numpy views of the CPU
tensors (no copies); a ``float`` argument is a numpy scalar of the arrays' real dtype.
The annotations are for readers and the type checker: numba compiles from the values.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ptyframe.engines import rules
from ptyframe.engines.numba_cache import compile_kernels
from ptyframe.engines.rules import constants, pie_coefficients

_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # no nnan/ninf: NaN propagate
_compiled: SimpleNamespace | None = None


def usable(*tensors: torch.Tensor) -> bool:
    """Return True when the kernels can run on ``tensors``: each a contiguous CPU tensor (the
    kernels take numpy views of them). Whether numba is present is the backend's question
    (``ptyframe.engines.backend``)."""
    return all(t.device.type == "cpu" and t.is_contiguous() for t in tensors)


def kernels() -> SimpleNamespace:
    """Return the kernels of this module compiled with numba (on first use; cached on disk).

    numba is imported here, not at module import, so that importing ptyframe stays quick. The
    rule's helpers (``rules.constants``, ``rules.pie_coefficients``) are compiled first and
    bound to this module's names, which the kernels call. numba keys its disk cache on this
    file alone, so ``numba_cache.flush_if_changed`` flushes the kernels' cache whenever this
    file or ``rules.py`` changed since it was written (the kernels hold the rule's code).
    """
    global _compiled
    if _compiled is None:
        sources = (Path(__file__), Path(rules.__file__))
        _compiled = compile_kernels(
            globals(), HELPERS, KERNELS, sources, "ptyframe-pie-kernels", _FASTMATH
        )
    return _compiled


def real_dtype(dtype: np.dtype) -> type:
    """Return the real numpy dtype of the complex ``dtype`` (float32 for complex64)."""
    return np.float32 if np.dtype(dtype) == np.complex64 else np.float64


def real_scalars(dtype: np.dtype, *values: float) -> tuple[np.floating, ...]:
    """Return ``values`` as numpy scalars of the real dtype of the complex ``dtype``."""
    kind = real_dtype(dtype)
    return tuple(kind(v) for v in values)


# ---------------------------------------------------------------- K probe modes ([K, M, N])
def exit_wave(
    obj: np.ndarray, y0: int, x0: int, p: np.ndarray, psi: np.ndarray, maxima: np.ndarray
) -> None:
    """``psi_k = O_r P_k`` (``O_r = obj[y0:y0+M, x0:x0+N]``, ``p`` ``[K, M, N]``).

    Writes ``maxima = [max|O_r|^2, max sum_k|P_k|^2]`` (a real array of 2).
    """
    n_modes, m, n = p.shape
    o_max = 0.0
    p_max = 0.0
    for i in range(m):
        orow = obj[y0 + i, x0 : x0 + n]
        for j in range(n):
            a = orow[j]
            oa = a.real * a.real + a.imag * a.imag
            if oa > o_max or oa != oa:
                o_max = oa
            pa = 0.0
            for k in range(n_modes):
                b = p[k, i, j]
                psi[k, i, j] = a * b
                pa += b.real * b.real + b.imag * b.imag
            if pa > p_max or pa != pa:
                p_max = pa
    maxima[0] = o_max
    maxima[1] = p_max


def modulus_delta(
    w: np.ndarray,
    amp: np.ndarray,
    valid: np.ndarray,
    use_valid: bool,
    inv_s: float,
    inv_n: float,
) -> float:
    """Replace ``w`` ``[K, M, N]`` by ``(Psi' - Psi) / sqrt(N)`` in place; return the error.

    ``w`` holds the unscaled far field ``D psi = sqrt(N) Psi`` (``pie_fft``); ``inv_s =
    1/sqrt(N)``, ``inv_n = 1/N``, so that the unscaled inverse ``D^H`` of the result is
    ``F^-1 (Psi' - Psi)`` of the unitary transforms. Returns ``sum_valid |A - a|``.
    """
    n_modes, m, n = w.shape
    fill_scale = inv_s / math.sqrt(n_modes)
    err = 0.0
    for i in range(m):
        for j in range(n):
            if use_valid and not valid[i, j]:
                for k in range(n_modes):
                    w[k, i, j] = 0.0
                continue
            a = amp[i, j]
            a2 = 0.0
            for k in range(n_modes):
                z = w[k, i, j]
                a2 += z.real * z.real + z.imag * z.imag
            model = math.sqrt(a2) * inv_s
            err += abs(model - a)
            if model > 0.0:
                r = (a / model - 1.0) * inv_n
                for k in range(n_modes):
                    w[k, i, j] = w[k, i, j] * r
            else:  # Xi(0) = 1
                for k in range(n_modes):
                    w[k, i, j] = a * fill_scale
    return err


def update(
    obj: np.ndarray,
    y0: int,
    x0: int,
    p: np.ndarray,
    d: np.ndarray,
    p_out: np.ndarray,
    maxima: np.ndarray,
    rule: np.ndarray,
) -> None:
    """The object step on ``obj``'s window and the probe step into ``p_out`` (``[K, M, N]``).

    ``O_r += fo sum_k conj(P_k) dpsi_k / (co sum_k |P_k|^2 + do)`` and
    ``p_out_k = acc P_k + fp conj(O_r) dpsi_k / (cp |O_r|^2 + dp)``: ``rules.pie_update``
    with the coefficients of ``rules.pie_coefficients`` (``rule``: ``PieRule.array``;
    ``maxima = [max|O_r|^2, max sum_k |P_k|^2]``); ``p_out`` must not be ``p`` (see the
    module docstring).
    """
    c = constants(rule)
    acc = c.accumulate
    fo, co, do, fp, cp, dp = pie_coefficients(c, maxima[0], maxima[1])
    n_modes, m, n = p.shape
    for i in range(m):
        orow = obj[y0 + i, x0 : x0 + n]
        for j in range(n):
            a = orow[j]
            g = a - a
            pa = a.real - a.real
            for k in range(n_modes):
                b = p[k, i, j]
                g += b.conjugate() * d[k, i, j]
                pa += b.real * b.real + b.imag * b.imag
            sp = fp / (cp * (a.real * a.real + a.imag * a.imag) + dp)
            ac = a.conjugate() * sp
            for k in range(n_modes):
                p_out[k, i, j] = p[k, i, j] * acc + ac * d[k, i, j]
            orow[j] = a + g * (fo / (co * pa + do))


# ---------------------------------------------------------------- one probe mode ([M, N])
def exit_wave1(
    obj: np.ndarray,
    y0: int,
    x0: int,
    p: np.ndarray,
    psi: np.ndarray,
    o_abs2: np.ndarray,
    p_abs2: np.ndarray,
    o_bits: np.ndarray,
    p_bits: np.ndarray,
    max_bits: np.ndarray,
) -> None:
    """``psi = O_r P`` for one mode (``[M, N]``); ``o_abs2 = |O_r|^2``, ``p_abs2 = |P|^2``.

    Writes their maxima into ``max_bits`` (``[max|O_r|^2, max|P|^2]``): ``o_bits``,
    ``p_bits`` and ``max_bits`` are unsigned-integer views of ``o_abs2``, ``p_abs2`` and the
    maxima array. For non-negative floats the IEEE bit patterns sort as unsigned integers
    (and every NaN above +inf), so an integer max, which compiles to vector code where a
    float max with NaN propagation does not, gives the float max and propagates NaN.
    """
    m, n = p.shape
    om = o_bits[0, 0] - o_bits[0, 0]
    pm = om
    for i in range(m):
        orow = obj[y0 + i, x0 : x0 + n]
        prow = p[i]
        srow = psi[i]
        oarow = o_abs2[i]
        parow = p_abs2[i]
        for j in range(n):
            a = orow[j]
            b = prow[j]
            srow[j] = a * b
            oarow[j] = a.real * a.real + a.imag * a.imag
            parow[j] = b.real * b.real + b.imag * b.imag
        obrow = o_bits[i]
        pbrow = p_bits[i]
        for j in range(n):
            x = obrow[j]
            om = x if x > om else om
            y = pbrow[j]
            pm = y if y > pm else pm
    max_bits[0] = om
    max_bits[1] = pm


def modulus_delta1(w: np.ndarray, amp: np.ndarray, inv_s: float, inv_n: float) -> float:
    """``modulus_delta`` for one mode and every pixel measured (``w`` ``[M, N]``).

    The error is summed per row in the patterns' dtype, the rows in float64.
    """
    m, n = w.shape
    err = 0.0
    for i in range(m):
        wrow = w[i]
        arow = amp[i]
        e = arow[0] - arow[0]
        for j in range(n):
            z = wrow[j]
            a = arow[j]
            model = math.sqrt(z.real * z.real + z.imag * z.imag) * inv_s
            e += abs(model - a)
            if model > 0.0:
                wrow[j] = (z * (a / model) - z) * inv_n
            else:  # Xi(0) = 1
                wrow[j] = a * inv_s
        err += e
    return err


def update1(
    obj: np.ndarray,
    y0: int,
    x0: int,
    p: np.ndarray,
    d: np.ndarray,
    p_out: np.ndarray,
    maxima: np.ndarray,
    rule: np.ndarray,
) -> None:
    """``update`` for one mode (``p``, ``d``, ``p_out`` ``[M, N]``); ``p_out`` is not ``p``.

    ePIE (``co = cp = 0``) takes constant steps and skips the per-pixel division.
    """
    c = constants(rule)
    acc = c.accumulate
    fo, co, do, fp, cp, dp = pie_coefficients(c, maxima[0], maxima[1])
    m, n = p.shape
    if co == 0 and cp == 0:
        so = fo / do
        sp = fp / dp
        for i in range(m):
            orow = obj[y0 + i, x0 : x0 + n]
            prow = p[i]
            drow = d[i]
            qrow = p_out[i]
            for j in range(n):
                a = orow[j]
                b = prow[j]
                dd = drow[j]
                qrow[j] = b * acc + a.conjugate() * dd * sp
                orow[j] = a + b.conjugate() * dd * so
    else:
        for i in range(m):
            orow = obj[y0 + i, x0 : x0 + n]
            prow = p[i]
            drow = d[i]
            qrow = p_out[i]
            for j in range(n):
                a = orow[j]
                b = prow[j]
                dd = drow[j]
                sp = fp / (cp * (a.real * a.real + a.imag * a.imag) + dp)
                so = fo / (co * (b.real * b.real + b.imag * b.imag) + do)
                qrow[j] = b * acc + a.conjugate() * dd * sp
                orow[j] = a + b.conjugate() * dd * so


def ramp_shift(
    spec: np.ndarray, ry: np.ndarray, rx: np.ndarray, out: np.ndarray, scale: float
) -> None:
    """``out = scale * spec * ry[:, None] * rx[None, :]`` over the last two axes (``[K, M, N]``).

    ``scale = 1/N`` makes the unscaled inverse ``D^H out`` the shifted probe ``F^-1(...)``.
    """
    n_modes, m, n = spec.shape
    for k in range(n_modes):
        for i in range(m):
            y = ry[i] * scale
            srow = spec[k, i]
            orow = out[k, i]
            for j in range(n):
                orow[j] = srow[j] * (y * rx[j])


def ramp_fold_back(spec: np.ndarray, step: np.ndarray, ry: np.ndarray, rx: np.ndarray) -> None:
    """``spec += step * conj(ry[:, None] * rx[None, :])`` (``T_-f`` in Fourier space)."""
    n_modes, m, n = spec.shape
    for k in range(n_modes):
        for i in range(m):
            y = ry[i].conjugate()
            srow = spec[k, i]
            trow = step[k, i]
            for j in range(n):
                srow[j] += trow[j] * (y * rx[j].conjugate())


def momentum(x: np.ndarray, buf: np.ndarray, v: np.ndarray, eta: float, gamma: float) -> None:
    """mPIE momentum on flat arrays: ``v = eta v + x - buf``, ``x += gamma v``, ``buf = x``."""
    for i in range(x.shape[0]):
        vi = eta * v[i] + (x[i] - buf[i])
        v[i] = vi
        xi = x[i] + gamma * vi
        x[i] = xi
        buf[i] = xi


#: Compiled in place by ``kernels()`` (the module name then refers to the compiled function).
HELPERS = ("constants", "pie_coefficients")
KERNELS = (
    "exit_wave",
    "modulus_delta",
    "update",
    "exit_wave1",
    "modulus_delta1",
    "update1",
    "ramp_shift",
    "ramp_fold_back",
    "momentum",
)


def no_mask(window: tuple[int, int]) -> np.ndarray:
    """Return the placeholder mask passed when every pixel is measured."""
    return np.ones(window, dtype=np.bool_)
