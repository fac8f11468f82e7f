"""Fused CPU kernels for one PIE position (ePIE/rPIE), compiled with numba when it is present.

The per-position PIE update is three passes over the window, each one loop here instead of
a dozen torch calls (PIE's time on a CPU goes to elementwise complex maths, not to FFTs):

1. ``exit_wave``: ``psi_k = O_r P_k`` and the maxima ``max|O_r|^2``, ``max sum_k |P_k|^2``;
2. ``modulus_delta`` (after ``Psi = F psi``): ``Psi' - Psi`` in place, exactly the rule of
   ``ptyframe.physics.projection.detector_delta`` (modulus replacement of the mode sum,
   ``Xi(0) = 1``, unmeasured pixels left free) and the amplitude error of the position;
3. ``update`` (after ``dpsi = F^-1 (Psi' - Psi)``): the ePIE or rPIE object and probe steps of
   ``ptyframe.engines.pie`` (both from the values before this position's update).

``kernels()`` compiles them with numba on first use; ``available()`` says whether numba is
installed. Without it the engine runs the same maths in torch. Arrays are numpy views of the
CPU tensors (no copies).
"""

from __future__ import annotations

import importlib.util
import math
from types import SimpleNamespace

import numpy as np

_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # no nnan/ninf: NaN propagate
_compiled: SimpleNamespace | None = None


def available() -> bool:
    """Return True when numba is importable (the kernels can be compiled)."""
    return importlib.util.find_spec("numba") is not None


def kernels() -> SimpleNamespace:
    """Return the kernels of this module compiled with numba (on first use; cached on disk).

    numba is imported here, not at module import, so that importing ptyframe stays quick.
    """
    global _compiled
    if _compiled is None:
        import numba

        jit = numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
        _compiled = SimpleNamespace(**{name: jit(globals()[name]) for name in KERNELS})
    return _compiled


def exit_wave(o, p, psi):  # noqa: ANN001, ANN201
    """``psi = O P`` for ``o`` ``[M, N]``, ``p`` ``[K, M, N]``; return (max|O|^2, max sum|P|^2)."""
    n_modes, m, n = p.shape
    o_max = 0.0
    p_max = 0.0
    for i in range(m):
        for j in range(n):
            a = o[i, j]
            oa = a.real * a.real + a.imag * a.imag
            if oa > o_max:
                o_max = oa
            pa = 0.0
            for k in range(n_modes):
                b = p[k, i, j]
                psi[k, i, j] = a * b
                pa += b.real * b.real + b.imag * b.imag
            if pa > p_max:
                p_max = pa
    return o_max, p_max


def modulus_delta(w, amp, valid, use_valid):  # noqa: ANN001, ANN201
    """Replace ``w`` ``[K, M, N]`` by ``Psi' - Psi`` in place; return ``sum_valid |A - a|``."""
    n_modes, m, n = w.shape
    fill_scale = 1.0 / math.sqrt(n_modes)
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
            model = math.sqrt(a2)
            err += abs(model - a)
            if model > 0.0:
                r = a / model - 1.0
                for k in range(n_modes):
                    w[k, i, j] = w[k, i, j] * r
            else:  # Xi(0) = 1
                for k in range(n_modes):
                    w[k, i, j] = a * fill_scale
    return err


def update(
    o, p, d, p_out, accumulate, rpie, alpha, beta, o_max, p_max, update_probe, step_o, step_p
):  # noqa: ANN001, ANN201, PLR0913, E501
    """Apply the ePIE/rPIE object step to ``o`` and write the probe step into ``p_out``.

    ePIE: ``O += alpha conj(P) dpsi / max|P|^2``, ``step = beta conj(O) dpsi / max|O|^2``;
    rPIE: ``O += conj(P) dpsi / ((1-alpha)|P|^2 + alpha max|P|^2)``, and
    ``step = conj(O) dpsi / ((1-beta)|O|^2 + beta max|O|^2)`` (``|P|^2`` summed over modes).
    ``p_out += step`` if ``accumulate`` else ``p_out = step``. Both steps are further
    multiplied by ``step_o`` and ``step_p`` (1 for ePIE/rPIE; mPIE's step sizes).
    """
    n_modes, m, n = p.shape
    do_obj = p_max > 0.0
    do_probe = update_probe and o_max > 0.0
    for i in range(m):
        for j in range(n):
            a = o[i, j]
            g = 0j
            pa = 0.0
            for k in range(n_modes):
                b = p[k, i, j]
                g += b.conjugate() * d[k, i, j]
                pa += b.real * b.real + b.imag * b.imag
            if do_probe:
                if rpie:
                    sp = step_p / (
                        (1.0 - beta) * (a.real * a.real + a.imag * a.imag) + beta * o_max
                    )
                else:
                    sp = step_p * beta / o_max
                ac = a.conjugate()
                for k in range(n_modes):
                    s = ac * d[k, i, j] * sp
                    if accumulate:
                        p_out[k, i, j] += s
                    else:
                        p_out[k, i, j] = s
            elif not accumulate:
                for k in range(n_modes):
                    p_out[k, i, j] = 0.0
            if do_obj:
                if rpie:
                    so = step_o / ((1.0 - alpha) * pa + alpha * p_max)
                else:
                    so = step_o * alpha / p_max
                o[i, j] = a + g * so


# ---------------------------------------------------------------- one probe mode ([M, N])
def exit_wave1(o, p, psi):  # noqa: ANN001, ANN201
    """``exit_wave`` for one mode: ``o``, ``p``, ``psi`` all ``[M, N]``."""
    m, n = p.shape
    o_max = 0.0
    p_max = 0.0
    for i in range(m):
        for j in range(n):
            a = o[i, j]
            b = p[i, j]
            psi[i, j] = a * b
            o_max = max(o_max, a.real * a.real + a.imag * a.imag)
            p_max = max(p_max, b.real * b.real + b.imag * b.imag)
    return o_max, p_max


def modulus_delta1(w, amp):  # noqa: ANN001, ANN201
    """``modulus_delta`` for one mode and every pixel measured (``w`` ``[M, N]``)."""
    m, n = w.shape
    err = 0.0
    for i in range(m):
        for j in range(n):
            z = w[i, j]
            a = amp[i, j]
            model = math.sqrt(z.real * z.real + z.imag * z.imag)
            err += abs(model - a)
            if model > 0.0:
                w[i, j] = z * (a / model - 1.0)
            else:  # Xi(0) = 1
                w[i, j] = a
    return err


def update1(
    o, p, d, p_out, accumulate, rpie, alpha, beta, o_max, p_max, update_probe, step_o, step_p
):  # noqa: ANN001, ANN201, PLR0913, E501
    """``update`` for one mode (all arrays ``[M, N]``), written branch-free per pixel.

    A step that must not happen (``max = 0``, or the probe fixed) gets the factor 0, and its
    denominator gets 1 added so that it stays finite.
    """
    m, n = p.shape
    on_o = p_max > 0.0
    on_p = update_probe and o_max > 0.0
    fo = step_o if on_o else 0.0
    fp = step_p if on_p else 0.0
    acc = 1.0 if accumulate else 0.0
    if rpie:
        co, do = 1.0 - alpha, alpha * p_max + (0.0 if on_o else 1.0)
        cp, dp = 1.0 - beta, beta * o_max + (0.0 if on_p else 1.0)
        for i in range(m):
            for j in range(n):
                a = o[i, j]
                b = p[i, j]
                dd = d[i, j]
                sp = fp / (cp * (a.real * a.real + a.imag * a.imag) + dp)
                so = fo / (co * (b.real * b.real + b.imag * b.imag) + do)
                p_out[i, j] = b * acc + a.conjugate() * dd * sp
                o[i, j] = a + b.conjugate() * dd * so
    else:
        so = fo * alpha / (p_max + (0.0 if on_o else 1.0))
        sp = fp * beta / (o_max + (0.0 if on_p else 1.0))
        for i in range(m):
            for j in range(n):
                a = o[i, j]
                b = p[i, j]
                dd = d[i, j]
                p_out[i, j] = b * acc + a.conjugate() * dd * sp
                o[i, j] = a + b.conjugate() * dd * so


def ramp_shift(spec, ry, rx, out):  # noqa: ANN001, ANN201
    """``out = spec * ry[:, None] * rx[None, :]`` over the last two axes (``[K, M, N]``)."""
    n_modes, m, n = spec.shape
    for k in range(n_modes):
        for i in range(m):
            y = ry[i]
            for j in range(n):
                out[k, i, j] = spec[k, i, j] * (y * rx[j])


def ramp_fold_back(spec, step, ry, rx):  # noqa: ANN001, ANN201
    """``spec += step * conj(ry[:, None] * rx[None, :])`` (``T_-f`` in Fourier space)."""
    n_modes, m, n = spec.shape
    for k in range(n_modes):
        for i in range(m):
            y = ry[i].conjugate()
            for j in range(n):
                spec[k, i, j] += step[k, i, j] * (y * rx[j].conjugate())


def momentum(x, buf, v, eta, gamma):  # noqa: ANN001, ANN201
    """mPIE momentum on flat arrays: ``v = eta v + x - buf``, ``x += gamma v``, ``buf = x``."""
    for i in range(x.shape[0]):
        vi = eta * v[i] + (x[i] - buf[i])
        v[i] = vi
        xi = x[i] + gamma * vi
        x[i] = xi
        buf[i] = xi


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
