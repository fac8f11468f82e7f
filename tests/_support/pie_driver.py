"""A plain torch ePIE sweep that calls the corrections' hooks (tests only; the frame does this).

The update rule of ``ptyframe.engines.pie`` (PINE paper eqs. 18-19) for position ``j`` with
object window ``O_j``, probe ``P_j = T_f (probe | OPR probe of j)`` and flux ``c_j``::

    Psi = F(O_j P_j);  A = sqrt(sum_k |Psi_k|^2);  Psi' = (a_j / c_j) Psi / A
    chi = F^-1 Psi' - psi
    O_j += alpha sum_k conj(P_jk) chi_k / max sum_k |P_jk|^2
    P   += T_-f [beta conj(O_j) chi / max |O_j|^2]       (or OPR's add_probe_step)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ptyframe.physics.patches import split_positions
from ptyframe.physics.subpixel import shift_each


def epie_sweep(obj, probe, positions_px, amps, order, alpha=0.5, beta=0.5, hooks=None) -> float:
    """Run one ePIE sweep in ``order`` calling ``hooks`` (positions, opr, flux); return error."""
    pos_c, opr, flux = (
        (hooks or {}).get("positions"),
        (hooks or {}).get("opr"),
        (hooks or {}).get("flux"),
    )
    corners, frac = split_positions(torch.as_tensor(positions_px))
    m, n = probe.shape[-2:]
    err = 0.0
    for j in order:
        y, x = int(corners[j, 0]), int(corners[j, 1])
        patch = obj[y : y + m, x : x + n]
        o_old = patch.clone()
        base = opr.probe_for(j, probe) if opr is not None else probe
        p = shift_each(base[None], frac[j : j + 1])[0]  # [K, M, N]
        wave = torch.fft.fft2(o_old * p, norm="ortho")
        model = wave.abs().square().sum(0).sqrt()
        a = amps[j]
        c = flux.factor(j) if flux is not None else 1.0
        if flux is not None:
            flux.observe(j, float((a * model).sum()), float((model * model).sum()))
        ratio = torch.where(model > 0, (a / c) / model.clamp_min(1e-30), torch.ones_like(model))
        chi = torch.fft.ifft2(wave * (ratio - 1.0), norm="ortho")
        err += float((c * model - a).abs().sum())
        if pos_c is not None:
            pos_c.observe(j, o_old, p, chi)
        p_abs2 = (p.abs() ** 2).sum(0)
        patch += alpha * (p.conj() * chi).sum(0) / p_abs2.max()
        step = beta * o_old.conj() * chi / (o_old.abs() ** 2).max()
        step = shift_each(step[None], -frac[j : j + 1])[0]
        if opr is not None:
            opr.add_probe_step(j, step, probe)
        else:
            probe += step
    return err


def run(obj, probe, positions_px, amps, sweeps, hooks=None, seed=0, alpha=0.5, beta=0.5):
    """Run ``sweeps`` sweeps with the corrections' epoch hooks; return the errors per sweep."""
    corrections = [c for c in (hooks or {}).values() if c is not None]
    ctx = _Ctx(positions_px, probe, obj.shape)
    for c in corrections:
        c.prepare(ctx)
    pos = torch.as_tensor(positions_px, dtype=torch.float64).clone()
    errors = []
    for epoch in range(sweeps):
        for c in corrections:
            c.begin_epoch(epoch, ctx)
        order = np.random.default_rng([seed, epoch]).permutation(pos.shape[0]).tolist()
        errors.append(epie_sweep(obj, probe, pos, amps, order, alpha, beta, hooks))
        for c in corrections:
            c.end_epoch(epoch, ctx)
        if (hooks or {}).get("positions") is not None:
            pos = hooks["positions"].positions_px.clone()
    return errors


class _Ctx:
    """The frame's view for the corrections (``corrections.base.FrameView``)."""

    def __init__(self, positions_px, probe, object_shape) -> None:
        self.positions_px = torch.as_tensor(positions_px, dtype=torch.float64)
        self.window = tuple(probe.shape[-2:])
        self.dtype = probe.dtype
        self.device = probe.device
        self.probe = probe
        self.object_shape = tuple(object_shape)


def amplitudes(patterns: np.ndarray) -> torch.Tensor:
    """Return FFT-order amplitudes ``[T, M, N]`` float64 of centred intensities."""
    a = np.sqrt(np.clip(np.asarray(patterns, dtype=np.float64), 0, None))
    return torch.from_numpy(np.fft.ifftshift(a, axes=(-2, -1)).copy())


def disk(m: int, radius: float, power: float) -> torch.Tensor:
    """Return a flat disk probe ``[1, m, m]`` complex128 with ``sum |P|^2 = power``."""
    y, x = np.mgrid[:m, :m] - m // 2
    d = (np.hypot(y, x) <= radius).astype(np.complex128)
    return torch.from_numpy(d * math.sqrt(power / d.real.sum()))[None]
