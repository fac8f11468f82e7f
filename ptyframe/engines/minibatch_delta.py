"""The minibatch engines' detector-plane step, fused into one pass per position.

For detector waves ``Psi`` ``[B, K, M, N]`` (unitary far field) and measured amplitudes
``a`` this returns ``Psi' - Psi`` and the amplitude errors ``e_b = sum_valid |A - a|``,
exactly the rule of ``ptyframe.physics.projection.detector_delta`` (modulus replacement of
the mode sum, ``Xi(0) = 1``, unmeasured pixels free; Yamada et al., J. Appl. Cryst. 57
(2024), eqs. 14-15).

On the numba backend the step is one pass per position (the ``modulus_delta`` kernels of
``ptyframe.engines.kernels`` with ``inv_s = inv_n = 1``) in place of torch's eight
elementwise passes (``benchmarks/batched_delta.py`` times both). The pass runs in the
calling thread: handing halves of the batch to two pool threads (the kernels release the
GIL) measured no faster, so it was left out. Elsewhere (the torch backend, another device, a
non-contiguous wave) it is ``detector_delta``.
"""

from __future__ import annotations

import numpy as np
import torch

from ptyframe.engines import kernels as kernel_module
from ptyframe.physics.projection import check_shapes, detector_delta


def _fused_ok(wave: torch.Tensor, amplitudes: torch.Tensor) -> bool:
    return (
        wave.dtype in (torch.complex64, torch.complex128)
        and amplitudes.dtype == wave.real.dtype
        and kernel_module.usable(wave)
    )


def _run(w, amp, valid, err, inv):
    """Every position ``b``: ``w[b]`` becomes ``Psi' - Psi`` in place, ``err[b]`` the error."""
    k = kernel_module.kernels()
    if valid is None and w.shape[1] == 1:
        for b in range(w.shape[0]):
            err[b] = k.modulus_delta1(w[b, 0], amp[b], inv, inv)
        return
    mask = kernel_module.no_mask(w.shape[-2:]) if valid is None else None
    for b in range(w.shape[0]):
        m = mask if valid is None else valid[b]
        err[b] = k.modulus_delta(w[b], amp[b], m, valid is not None, inv, inv)


def batched_delta(
    wave: torch.Tensor,
    amplitudes: torch.Tensor,
    valid: torch.Tensor | None = None,
    fused: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(Psi' - Psi, e)`` for ``wave`` ``[B, K, M, N]``; may overwrite ``wave``.

    ``fused``: the numba backend (``ptyframe.engines.backend``) runs the kernels where the
    tensors allow (contiguous CPU memory of matching dtypes), else ``detector_delta``. Same
    values as ``detector_delta`` to float rounding (module docstring); ``e`` ``[B]`` float64.
    """
    if not (fused and _fused_ok(wave, amplitudes)):
        return detector_delta(wave, amplitudes, valid)
    check_shapes(wave, amplitudes, valid)
    w = wave.numpy()
    amp = np.ascontiguousarray(amplitudes.numpy())
    mask = None if valid is None else np.ascontiguousarray(valid.numpy())
    err = np.zeros(w.shape[0], dtype=np.float64)
    (inv,) = kernel_module.real_scalars(w.dtype, 1.0)
    _run(w, amp, mask, err, inv)
    return wave, torch.from_numpy(err)
