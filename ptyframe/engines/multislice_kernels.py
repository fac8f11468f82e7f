"""Fused CPU kernels of the multislice PIE visit (the numba backend), compiled with numba.

The e3PIE chain (Maiden, Humphry & Rodenburg, J. Opt. Soc. Am. A 29, 1606 (2012);
``ptyframe.physics.exitwave`` states it, ``ptyframe.engines.visit_sweeps.sweep_visits`` runs
it in torch, the specification) needs two passes per slice beyond the one-slice kernels of
``ptyframe.engines.kernels``, each over the exit-wave window ``[K, M', N']``:

``slice_exit`` (forward, slice ``s >= 1``)
    the wave incident on slice ``s`` arrives in the transforms' buffer (``u_s = Q_{s-1}
    e_{s-1}``); it is kept for the chain back and replaced by the slice's exit wave
    ``e_s = O_s u_s`` in place, and the maxima ``max |O_s|^2``, ``max sum_k |u_sk|^2`` of
    the e3PIE normalisation are taken on the way;
``slice_update`` (backward, slice ``s >= 1``)
    with ``chi_s`` in the transforms' buffer, the slice's object step and its incident-wave
    step, both from the values before the update (``visit.pie_slice_rule``)::

        O_s  <- O_s + fo sum_k conj(u_sk) chi_sk / (co sum_k |u_sk|^2 + do)
        chi  <- fp conj(O_s) chi_s / (cp |O_s|^2 + dp)        (= du_s, in place)

    with the coefficients of ``rules.pie_coefficients`` compiled (the rule with the probe
    step on, as every slice after the first carries its step back); ``Q_{s-1}^H du_s`` is
    then the exit-wave change of the slice before.

The first slice takes the one-slice kernels (``kernels.exit_wave``, ``update``: its incident
step is the probe step). As in ``ptyframe.engines.kernels``, the window is read from the
slice whole with its corner ``(y0, x0)``, every scalar has the arrays' real dtype and numpy's
error model is used.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ptyframe.engines import rules
from ptyframe.engines.numba_cache import compile_kernels
from ptyframe.engines.rules import constants, pie_coefficients

_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # no nnan/ninf: NaN propagate
_compiled: SimpleNamespace | None = None


def kernels() -> SimpleNamespace:
    """Return this module's kernels compiled with numba (on first use; cached on disk).

    The rule's helpers are compiled first and bound to this module's names (as in
    ``ptyframe.engines.kernels.kernels``); the stale-cache stamp covers ``rules.py`` too."""
    global _compiled
    if _compiled is None:
        sources = (Path(__file__), Path(rules.__file__))
        _compiled = compile_kernels(
            globals(), HELPERS, KERNELS, sources, "ptyframe-multislice-kernels", _FASTMATH
        )
    return _compiled


def slice_exit(
    obj: np.ndarray, y0: int, x0: int, w: np.ndarray, keep: np.ndarray, maxima: np.ndarray
) -> None:
    """``keep = w``, then ``w_k = O_s w_k`` in place (``O_s = obj[y0:y0+M, x0:x0+N]``).

    ``w``, ``keep`` ``[K, M, N]``; writes ``maxima = [max |O_s|^2, max sum_k |w_k|^2]``
    (a real array of 2; NaN propagates).
    """
    n_modes, m, n = w.shape
    o_max = 0.0
    u_max = 0.0
    for i in range(m):
        orow = obj[y0 + i, x0 : x0 + n]
        for j in range(n):
            a = orow[j]
            oa = a.real * a.real + a.imag * a.imag
            if oa > o_max or oa != oa:
                o_max = oa
            ua = 0.0
            for k in range(n_modes):
                u = w[k, i, j]
                keep[k, i, j] = u
                w[k, i, j] = a * u
                ua += u.real * u.real + u.imag * u.imag
            if ua > u_max or ua != ua:
                u_max = ua
    maxima[0] = o_max
    maxima[1] = u_max


def slice_update(
    obj: np.ndarray,
    y0: int,
    x0: int,
    u: np.ndarray,
    d: np.ndarray,
    maxima: np.ndarray,
    rule: np.ndarray,
) -> None:
    """The object step on ``obj``'s window and the incident step written over ``d``.

    ``u`` ``[K, M, N]`` the incident waves, ``d`` ``[K, M, N]`` holds ``chi_s`` and becomes
    ``du_s``; ``maxima = [max |O_s|^2, max sum_k |u_k|^2]``, ``rule``: ``PieRule.array``
    (module docstring).
    """
    c = constants(rule)
    fo, co, do, fp, cp, dp = pie_coefficients(c, maxima[0], maxima[1])
    n_modes, m, n = u.shape
    for i in range(m):
        orow = obj[y0 + i, x0 : x0 + n]
        for j in range(n):
            a = orow[j]
            g = a - a
            ua = a.real - a.real
            for k in range(n_modes):
                b = u[k, i, j]
                g += b.conjugate() * d[k, i, j]
                ua += b.real * b.real + b.imag * b.imag
            ac = a.conjugate() * (fp / (cp * (a.real * a.real + a.imag * a.imag) + dp))
            for k in range(n_modes):
                d[k, i, j] = ac * d[k, i, j]
            orow[j] = a + g * (fo / (co * ua + do))


def slice_exit1(
    obj: np.ndarray,
    y0: int,
    x0: int,
    w: np.ndarray,
    keep: np.ndarray,
    o_abs2: np.ndarray,
    u_abs2: np.ndarray,
    o_bits: np.ndarray,
    u_bits: np.ndarray,
    max_bits: np.ndarray,
) -> None:
    """``slice_exit`` for one mode (``w``, ``keep`` ``[M, N]``).

    The maxima as in ``kernels.exit_wave1``: ``o_abs2 = |O_s|^2`` and ``u_abs2 = |u|^2`` are
    written to scratch (the transforms' free buffer) and their maxima taken as the
    unsigned-integer max of the bit patterns (``o_bits``, ``u_bits``, ``max_bits``: views of
    the scratch and of the maxima), which compiles to vector code and propagates NaN.
    """
    m, n = w.shape
    om = o_bits[0, 0] - o_bits[0, 0]
    um = om
    for i in range(m):
        orow = obj[y0 + i, x0 : x0 + n]
        wrow = w[i]
        krow = keep[i]
        oarow = o_abs2[i]
        uarow = u_abs2[i]
        for j in range(n):
            a = orow[j]
            u = wrow[j]
            krow[j] = u
            wrow[j] = a * u
            oarow[j] = a.real * a.real + a.imag * a.imag
            uarow[j] = u.real * u.real + u.imag * u.imag
        obrow = o_bits[i]
        ubrow = u_bits[i]
        for j in range(n):
            x = obrow[j]
            om = x if x > om else om
            y = ubrow[j]
            um = y if y > um else um
    max_bits[0] = om
    max_bits[1] = um


def slice_update1(
    obj: np.ndarray,
    y0: int,
    x0: int,
    u: np.ndarray,
    d: np.ndarray,
    maxima: np.ndarray,
    rule: np.ndarray,
) -> None:
    """``slice_update`` for one mode (``u``, ``d`` ``[M, N]``); ePIE (``co = cp = 0``) takes
    constant steps and skips the per-pixel division."""
    c = constants(rule)
    fo, co, do, fp, cp, dp = pie_coefficients(c, maxima[0], maxima[1])
    m, n = u.shape
    if co == 0 and cp == 0:
        so = fo / do
        sp = fp / dp
        for i in range(m):
            orow = obj[y0 + i, x0 : x0 + n]
            urow = u[i]
            drow = d[i]
            for j in range(n):
                a = orow[j]
                dd = drow[j]
                drow[j] = a.conjugate() * dd * sp
                orow[j] = a + urow[j].conjugate() * dd * so
    else:
        for i in range(m):
            orow = obj[y0 + i, x0 : x0 + n]
            urow = u[i]
            drow = d[i]
            for j in range(n):
                a = orow[j]
                b = urow[j]
                dd = drow[j]
                sp = fp / (cp * (a.real * a.real + a.imag * a.imag) + dp)
                so = fo / (co * (b.real * b.real + b.imag * b.imag) + do)
                drow[j] = a.conjugate() * dd * sp
                orow[j] = a + b.conjugate() * dd * so


#: Compiled in place by ``kernels()`` (the module name then refers to the compiled function).
HELPERS = ("constants", "pie_coefficients")
KERNELS = ("slice_exit", "slice_update", "slice_exit1", "slice_update1")
