"""Fused CPU kernels of the near-field PIE visit (the numba backend), compiled with numba.

The near-field visit of one slice (``ptyframe.engines.visit_sweeps.sweep_visits`` with a
``NearFieldPropagator``, its specification) between the exit wave and the update::

    Psi   = C_b F^-1 [H F psi]                     the detector window, in the image's order
    delta = Psi' - Psi                             modulus constraint (projection.detector_delta)
    chi   = F^-1 [conj(H) F C_b^T delta]           zero-padded back to the buffered window

``F`` and ``F^-1`` are the unscaled DFTs ``D``, ``D^H`` of ``ptyframe.engines.pie_fft`` on the
buffered window ``M' x N'`` (``M' = M + 2b``); ``transfer`` multiplies by ``H / (M' N')``
(or ``conj(H) / (M' N')``), so ``D^H (H / N) D = F^-1 H F`` and no pass of its own scales.
``near_delta`` does the crop ``C_b``, the constraint and the zero padding ``C_b^T`` in one
pass over the window, in place: the centre ``M x N`` becomes ``delta``, the buffer zone 0.
The measured row is read in the stored image's order (``NearFieldPropagator.forward_image``
compares there: ``fft.to_centred`` of the detector-order row, pixel ``(i, j)`` of the image
being ``a[(i - sy) mod M, (j - sx) mod N]`` with ``(sy, sx) = (M // 2, N // 2)``); with
``b = 0`` the roll rides on the kernel ``H`` and ``(sy, sx) = (0, 0)``.

The object and probe steps are those of the far field (``kernels.update``, ``update1``:
``rules.pie_update`` with ``rules.pie_coefficients`` compiled) with ``chi`` in place of
``dpsi``: the e3PIE step of the first (only) slice (``visit.pie_slice_rule``). As in
``ptyframe.engines.kernels``, every scalar has the arrays' real dtype, and numpy's error
model is used (no branch per division).
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ptyframe.engines.numba_cache import compile_kernels

_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}  # no nnan/ninf: NaN propagate
_compiled: SimpleNamespace | None = None


def kernels() -> SimpleNamespace:
    """Return this module's kernels compiled with numba (on first use; cached on disk).

    The helpers (``HELPERS``) are compiled first and bound to this module's names, which the
    kernels call (as in ``ptyframe.engines.kernels.kernels``)."""
    global _compiled
    if _compiled is None:
        _compiled = compile_kernels(
            globals(), HELPERS, KERNELS, (Path(__file__),), "ptyframe-near-field-kernels", _FASTMATH
        )
    return _compiled


def transfer(w: np.ndarray, h: np.ndarray) -> None:
    """``w_k *= h`` in place for ``w`` ``[K, M', N']`` and the kernel ``h`` ``[M', N']``."""
    n_modes, m, n = w.shape
    for k in range(n_modes):
        for i in range(m):
            wrow = w[k, i]
            hrow = h[i]
            for j in range(n):
                wrow[j] = wrow[j] * hrow[j]


def _zero_buffer(w: np.ndarray, b: int, m: int, n: int) -> None:
    """Set the buffer zone of ``w`` ``[K, M', N']`` (all but ``w[:, b:b+m, b:b+n]``) to 0."""
    n_modes, mp, np_ = w.shape
    for k in range(n_modes):
        for i in range(mp):
            wrow = w[k, i]
            if i < b or i >= b + m:
                for j in range(np_):
                    wrow[j] = 0.0
            else:
                for j in range(b):
                    wrow[j] = 0.0
                for j in range(b + n, np_):
                    wrow[j] = 0.0


def near_delta(
    w: np.ndarray,
    b: int,
    amp: np.ndarray,
    valid: np.ndarray,
    use_valid: bool,
    sy: int,
    sx: int,
) -> float:
    """Replace ``w`` ``[K, M', N']`` by ``C_b^T (Psi' - Psi)`` in place; return the error.

    ``w`` holds ``F^-1 H F psi`` (unitary scale); its centre ``w[:, b:b+M, b:b+N]`` is the
    detector window ``Psi`` in the image's order, compared with ``amp[(i - sy) % M, (j - sx)
    % N]`` (``valid`` likewise, read only with ``use_valid``). Modulus replacement of the
    mode sum, ``Xi(0) = 1`` (``a / sqrt(K)`` in every mode), unmeasured pixels left free
    (``delta = 0``); the buffer zone is set to 0. Returns ``sum_valid |A - a|``. Each row
    of the image is two contiguous runs of the measured row (``jj >= sx``: ``jj - sx``, else
    ``jj + N - sx``), so the inner loops index without a modulo.
    """
    n_modes = w.shape[0]
    m, n = amp.shape
    _zero_buffer(w, b, m, n)
    err = 0.0
    for ii in range(m):
        i = b + ii
        arow = amp[(ii - sy) % m]
        vrow = valid[(ii - sy) % m]
        e = arow[0] - arow[0]
        zero = e
        one = e + True  # 1 in the rows' dtype (a Python 1.0 would make float32 maths float64)
        fill = one / math.sqrt(n_modes)
        for lo, hi, off in ((sx, n, -sx), (0, sx, n - sx)):
            if n_modes == 1:
                wrow = w[0, i]
                for jj in range(lo, hi):
                    j = b + jj
                    z = wrow[j]
                    a = arow[jj + off]
                    ok = vrow[jj + off] or not use_valid
                    model = math.sqrt(z.real * z.real + z.imag * z.imag)
                    e += abs(model - a) if ok else zero
                    r = a / model - one if ok else zero
                    wrow[j] = z * r if (model > zero or not ok) else z - z + a
                continue
            for jj in range(lo, hi):
                j = b + jj
                a = arow[jj + off]
                ok = vrow[jj + off] or not use_valid
                a2 = zero
                for k in range(n_modes):
                    z = w[k, i, j]
                    a2 += z.real * z.real + z.imag * z.imag
                model = math.sqrt(a2)
                e += abs(model - a) if ok else zero
                r = a / model - one if ok else zero
                for k in range(n_modes):
                    z = w[k, i, j]
                    w[k, i, j] = z * r if (model > zero or not ok) else z - z + a * fill
        err += e
    return err


#: Compiled in place by ``kernels()`` (the module name then refers to the compiled function).
HELPERS = ("_zero_buffer",)
KERNELS = ("transfer", "near_delta")
