"""State the PIE family's update rules, once: the specification every sweep runs.

One position ``r`` with object window ``O_r`` ``[M, N]``, probe modes ``P_k`` ``[K, M, N]``
(both *before* this position's update, as in the PINE reference code) and the exit-wave
change ``dpsi_k = F^-1 Psi'_k - psi_k`` from the Fourier constraint
(``ptyframe.physics.projection``) takes the steps

    O_r <- O_r + fo * sum_k conj(P_k) dpsi_k / (co * sum_k |P_k|^2 + do)
    P_k <- P_k + fp * conj(O_r)   dpsi_k     / (cp * |O_r|^2       + dp)

with the six coefficients of ``pie_coefficients``:

* **ePIE** (Maiden & Rodenburg, Ultramicroscopy 109, 1256 (2009); the PINE paper, Yamada et
  al., J. Appl. Cryst. 57 (2024), eqs. 18-19): ``co = cp = 0``,
  ``fo / do = alpha / max sum_k |P_k|^2``, ``fp / dp = beta / max |O_r|^2``::

      O_r <- O_r + alpha conj(P) dpsi / max|P|^2
      P   <- P   + beta  conj(O_r) dpsi / max|O_r|^2

* **rPIE** (Maiden, Johnson & Li, Optica 4, 736 (2017), eq. 6 for the object; the same form
  with ``beta`` for the probe, as the PINE paper sweeps rPIE's (alpha, beta))::

      O_r <- O_r + conj(P) dpsi / ((1 - alpha) |P|^2 + alpha max|P|^2)
      P   <- P   + conj(O_r) dpsi / ((1 - beta) |O_r|^2 + beta max|O_r|^2)

* **mPIE** (the same paper, eqs. 6 and 8-9) takes rPIE's steps scaled by ``gamma_O``,
  ``gamma_P`` (``step_o``, ``step_p``) and adds ``mpie_momentum`` every ``T`` positions.

A step that must not happen (a maximum that is 0 or NaN, the probe fixed) gets ``f = 0`` and
``d = 1`` so that it stays finite. ``pie_coefficients`` is plain scalar arithmetic on the
fields of a ``PieRule`` (or of its ``PieConstants``, as the kernels read it): the torch sweep
calls it with Python floats and the fused numba kernels (``ptyframe.engines.kernels``) compile
the same function, so the two backends cannot drift apart; ``tests`` hold them equal on every
registered engine. Incoherent probe modes (Thibault & Menzel, Nature 494, 68 (2013)) enter
through the sums over ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np
import torch


@dataclass(frozen=True)
class PieRule:
    """The constants of one sweep's PIE rule (module docstring).

    ``rpie``: the rPIE denominators (else ePIE); ``alpha``, ``beta``: the rule's object and
    probe constants; ``step_o``, ``step_p``: extra factors in front (mPIE's gamma_O,
    gamma_P; 1 otherwise); ``update_probe``: take the probe step; ``accumulate``: the probe
    step is added to the probe (1) or written alone (0, for a sub-pixel sweep that folds it
    back into the probe's spectrum).
    """

    rpie: bool
    alpha: float
    beta: float
    step_o: float = 1.0
    step_p: float = 1.0
    update_probe: bool = True
    accumulate: bool = True

    def array(self, dtype: np.dtype | type) -> np.ndarray:
        """Return the fields as a real array of ``dtype`` in field order (for the kernels).

        The kernels read it back by name with ``constants``. Every value has the arrays' real
        dtype: a Python float is float64 in numba and would turn complex64 arithmetic into
        complex128. (A plain array crosses into a compiled kernel with less overhead than a
        record or a named tuple, and a sweep passes it once per position.)
        """
        return np.array([float(getattr(self, f.name)) for f in fields(self)], dtype=dtype)


class PieConstants(NamedTuple):
    """The kernels' view of ``PieRule.array``: the same fields, by name, in the real dtype."""

    rpie: float
    alpha: float
    beta: float
    step_o: float
    step_p: float
    update_probe: float
    accumulate: float


def constants(a: np.ndarray) -> PieConstants:
    """Return ``PieRule.array``'s values ``a`` as ``PieConstants`` (read by name).

    Compiled by numba as it stands (annotations are ignored there), like ``pie_coefficients``.
    """
    return PieConstants(a[0], a[1], a[2], a[3], a[4], a[5], a[6])


def pie_coefficients(
    rule: PieRule | PieConstants, o_max: float, p_max: float
) -> tuple[float, float, float, float, float, float]:
    """Return ``(fo, co, do, fp, cp, dp)`` of one position (module docstring).

    ``o_max = max |O_r|^2``, ``p_max = max sum_k |P_k|^2`` of the position; ``rule`` a
    ``PieRule`` or ``PieConstants``. Written in scalar arithmetic of ``p_max``'s type (``x - x``
    for 0, ``x - x + True`` for 1: numba keeps float32 there, where ``+ 1`` would make it
    float64) so that the kernels keep the arrays' precision.
    """
    zero = p_max - p_max
    one = zero + True
    alpha = zero + rule.alpha
    beta = zero + rule.beta
    on_o = p_max > zero
    on_p = rule.update_probe != 0 and o_max > zero
    fo = zero + rule.step_o if on_o else zero
    fp = zero + rule.step_p if on_p else zero
    if rule.rpie != 0:
        co, do = one - alpha, (alpha * p_max if on_o else one)
        cp, dp = one - beta, (beta * o_max if on_p else one)
    else:
        co, do = zero, (p_max / alpha if on_o and alpha > zero else one)
        cp, dp = zero, (o_max / beta if on_p and beta > zero else one)
        fo = fo if alpha > zero else zero
        fp = fp if beta > zero else zero
    return fo, co, do, fp, cp, dp


def abs2(x: torch.Tensor) -> torch.Tensor:
    """Return ``|x|^2`` (real) without the complex ``abs`` (whose hypot is slow on a CPU)."""
    return x.real.square() + x.imag.square()


def pie_update(
    o_r: torch.Tensor, probe: torch.Tensor, dpsi: torch.Tensor, rule: PieRule
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return the object step ``[M, N]`` and the probe step ``[K, M, N]`` (or None) of one
    position (module docstring: ePIE, rPIE, mPIE's per-position step).

    ``o_r`` ``[M, N]`` and ``probe`` ``[K, M, N]`` are the values before the update,
    ``dpsi`` ``[K, M, N]``. The probe step is None when the rule skips it.
    """
    p_abs2 = abs2(probe).sum(0)
    o_abs2 = abs2(o_r)
    fo, co, do, fp, cp, dp = pie_coefficients(rule, float(o_abs2.max()), float(p_abs2.max()))
    o_step = (probe.conj() * dpsi).sum(0).mul_(fo).div_(p_abs2.mul_(co).add_(do))
    if fp == 0:
        return o_step, None
    p_step = (o_r.conj() * dpsi).mul_(fp).div_(o_abs2.mul_(cp).add_(dp))
    return o_step, p_step


def mpie_momentum(
    x: torch.Tensor, buffer: torch.Tensor, velocity: torch.Tensor, eta: float, gamma: float
) -> None:
    """Apply mPIE's momentum step in place (Maiden, Johnson & Li 2017, eqs. 8-9)::

    v <- eta v + (x - x_buffer);   x <- x + gamma v;   x_buffer <- x

    ``x`` is the object or the probe, ``buffer`` its value ``T`` positions ago.
    """
    velocity.mul_(eta).add_(x).sub_(buffer)
    x.add_(velocity, alpha=gamma)
    buffer.copy_(x)


def summed_pie_step(
    num: torch.Tensor, weight: torch.Tensor, reg: float, rpie: bool
) -> torch.Tensor:
    """Return a group's summed ePIE/rPIE step ``num / denominator`` (minibatch PIE).

    For the positions ``b`` of a group, ``num = sum_b S_b^T conj(P_b) chi_b`` and
    ``weight = sum_b S_b^T |P_b|^2`` (likewise for the probe with the object windows); the
    per-position rule of ``pie_update`` with both sums in place of one position's terms::

        ePIE:  num * reg / max(weight)        rPIE:  num / ((1 - reg) weight + reg max(weight))

    A group of one position takes exactly its sequential step.
    """
    w_max = float(weight.max())
    if not w_max > 0:
        return torch.zeros_like(num)
    if rpie:
        return num / (weight * (1.0 - reg) + reg * w_max)
    return num * (reg / w_max)
