"""The coarse scan-map step: the global map from the windows' local deformation.

A wrong global map ``q = M p`` of the recorded scan (scale, rotation, shear) is seen by no
per-position shift once the object has formed: the object forms as the deformed copy
``O'(x) = O(M^-1 x)`` of the truth (about the scan's centre), and each window ``O'(q_j + r)``
is then the true window deformed about the probe's centre ``r0``, not moved. The position
gradient (``positions``) sees only the edges of the scan, where the neighbours are on one
side, and the map has to creep in from there. What each window does see is the deformation:
with ``L = I + E``, the exit wave of the deformed window is, to first order::

    psi_j(t_j, E) = psi_j + P_j (t_j + E (r - r0)) . grad O'_j                      (1)

The least-squares ``E`` over all positions of the sweep's exit-wave updates
``chi_j = F^-1(a_j Psi_j / |Psi_j|) - psi_j`` (each position's shift ``t_j`` a nuisance,
eliminated by its Schur complement, the 2x2 system of ``positions`` being its block) is the
local form of the affine position refinement of Odstrcil, Menzel & Guizar-Sicairos, Opt.
Express 26, 3108 (2018), sec. 4.3 (there the map is fitted to the per-position shifts, which a
formed, deformed object makes zero; here to the deformation each window sees). The step
``L = I + gain E`` is applied to both object and positions about the scan's centre ``c``
(window centres ``z = p + r0``)::

    O(x) <- O'(c + L (x - c))       z_j <- c + L^-1 (z_j - c)                      (2)

which leaves every exit wave as (1) asked (``O''(z''_j + r) = O'(z_j + L r)``); the object is
resampled bicubically (``torch.nn.functional.grid_sample``). The estimate is biased low (the
sweep has already fitted the object to the current positions, and the modulus projection keeps
only part of the change), so the step carries a gain (``PositionConfig.coarse_gain``) and is
repeated every sweep of the coarse range.

The isotropic part of ``E`` (a common scale of y and x) is left out: a curved (defocused)
probe trades its curvature against the object's scale (``positions``' module docstring), and
the estimate of that part follows the probe, not the truth. Rotation, shear and the
difference of the two scales are kept.

Runs in torch on the frame's state after the sweep (the same numbers whatever the sweep's
backend): two FFTs per position.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

#: a basis ``[4, 3]`` of the traceless ``E = [E_yy, E_yx, E_xy, E_xx]``: the difference of
#: the scales, and the two off-diagonal entries (rotation and shear)
TRACELESS = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]])
#: positions per batch of the coarse passes
BATCH = 32


def windows(obj: torch.Tensor, corners: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """Return the object windows ``[B, M, N]`` at integer corners ``[B, 2]`` of ``obj [H, W]``."""
    m, n = window
    iy = corners[:, :1] + torch.arange(m)[None]
    ix = corners[:, 1:] + torch.arange(n)[None]
    return obj[iy[:, :, None], ix[:, None, :]]


def far_field(o: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
    """Return ``Psi = F(P_k O)`` ``[B, K, M, N]`` (unitary, FFT order, as the sweeps)."""
    return torch.fft.fft2(o[:, None] * probe[None], norm="ortho")


def chunks(
    data: object, device: torch.device
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """Yield ``(start, a [B, M, N], valid or None)`` of ``data`` in scan order, ``BATCH`` rows."""
    for s, a, v in data.amplitude_chunks():  # type: ignore[attr-defined]
        for b in range(0, a.shape[0], BATCH):
            vb = None if v is None else v[b : b + BATCH].to(device)
            yield s + b, a[b : b + BATCH].to(device), vb


def deformation_system(
    obj: torch.Tensor,
    probe: torch.Tensor,
    positions_px: np.ndarray,
    data: object,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the summed reduced normal equations ``(G [4, 4], h [4])`` of ``E`` in (1),
    ``E = [E_yy, E_yx, E_xy, E_xx]`` (rows: y, x of the move; columns: y, x of ``r - r0``)."""
    window = (int(probe.shape[-2]), int(probe.shape[-1]))
    m, n = window
    ry = (torch.arange(m, dtype=torch.float64) - (m - 1) / 2)[:, None].expand(m, n)
    rx = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2)[None, :].expand(m, n)
    rdt = probe.real.dtype
    ry, rx = ry.to(rdt), rx.to(rdt)
    corners = torch.from_numpy(np.floor(positions_px).astype(np.int64))
    w = (probe.real.square() + probe.imag.square()).sum(0)  # sum_k |P_k|^2
    g_total = np.zeros((4, 4))
    h_total = np.zeros(4)
    for s, a, v in chunks(data, obj.device):
        o = windows(obj, corners[s : s + a.shape[0]], window)
        wave = far_field(o, probe)
        model = (wave.real.square() + wave.imag.square()).sum(1, keepdim=True).sqrt()
        ratio = torch.where(model > 0, a[:, None] / model.clamp_min(1e-30), 1.0)
        if v is not None:
            ratio = torch.where(v[:, None] > 0, ratio, 1.0)
        chi = torch.fft.ifft2(wave * (ratio - 1.0), norm="ortho")
        q = (probe.conj()[None] * chi).sum(1)  # [B, M, N] sum_k conj(P_k) chi_k
        gy = torch.gradient(o, dim=-2)[0]
        gx = torch.gradient(o, dim=-1)[0]
        feats = torch.stack([gy, gx, ry * gy, rx * gy, ry * gx, rx * gx], 1)  # [B, 6, M, N]
        nrm = torch.einsum("bpmn,blmn->bpl", (feats * w).conj(), feats).real.to(torch.float64)
        rhs = torch.einsum("bpmn,bmn->bp", feats.conj(), q).real.to(torch.float64)
        g, h = _reduce(nrm.numpy(), rhs.numpy())
        g_total += g
        h_total += h
    return g_total, h_total


def _reduce(nrm: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eliminate each position's shift (the first two unknowns) from ``nrm [B, 6, 6]``,
    ``rhs [B, 6]`` (Schur complement); return the summed ``[4, 4]``, ``[4]``."""
    a, b, c = nrm[:, :2, :2], nrm[:, :2, 2:], nrm[:, 2:, 2:]
    scale = np.trace(a, axis1=1, axis2=2)[:, None, None] * 1e-9 + 1e-300
    a_inv = np.linalg.inv(a + scale * np.eye(2)[None])
    bt_ainv = np.transpose(b, (0, 2, 1)) @ a_inv  # [B, 4, 2]
    g = (c - bt_ainv @ b).sum(0)
    h = (rhs[:, 2:] - (bt_ainv @ rhs[:, :2, None])[..., 0]).sum(0)
    return g, h


def solve_deformation(
    g: np.ndarray, h: np.ndarray, regularisation: float, gain: float = 1.0, isotropic: bool = True
) -> np.ndarray:
    """Return ``L = I + gain E`` ``[2, 2]`` from the summed system (Tikhonov
    ``regularisation`` times the mean diagonal). Without ``isotropic`` ``E`` is solved for
    on the traceless matrices ``E = B theta`` (no common scale; module docstring):
    ``theta = (B^T G B + lam)^-1 B^T h``. The identity when the system is empty."""
    basis = np.eye(4) if isotropic else TRACELESS
    gb = basis.T @ g @ basis
    lam = float(regularisation) * float(np.trace(gb)) / gb.shape[0]
    if not np.isfinite(lam) or np.trace(gb) <= 0:
        return np.eye(2)
    theta = np.linalg.solve(gb + lam * np.eye(gb.shape[0]), basis.T @ h)
    return np.eye(2) + float(gain) * (basis @ theta).reshape(2, 2)


def warp_object(obj: torch.Tensor, matrix: np.ndarray, centre_px: np.ndarray) -> torch.Tensor:
    """Return ``O(c + L (x - c))`` ``[H, W]`` of ``obj [H, W]`` (bicubic; the border held)."""
    h, w = obj.shape[-2:]
    rdt = obj.real.dtype
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    lm = torch.from_numpy(np.asarray(matrix, dtype=np.float64))
    cy, cx = float(centre_px[0]), float(centre_px[1])
    sy = cy + lm[0, 0] * (yy - cy) + lm[0, 1] * (xx - cx)
    sx = cx + lm[1, 0] * (yy - cy) + lm[1, 1] * (xx - cx)
    grid = torch.stack([2 * sx / (w - 1) - 1, 2 * sy / (h - 1) - 1], -1)[None].to(rdt)
    img = torch.stack([obj.real, obj.imag], 0)[None]
    out = torch.nn.functional.grid_sample(
        img, grid.to(obj.device), mode="bicubic", padding_mode="border", align_corners=True
    )[0]
    return torch.complex(out[0], out[1]).to(obj.dtype)


def map_positions(positions_px: np.ndarray, matrix: np.ndarray, window: tuple[int, int]) -> tuple:
    """Return ``(p'', c)``: the positions of (3), ``z'' = c + L^-1 (z - c)`` with the window
    centres ``z = p + r0``, and the centre ``c`` (object pixels) the object warp needs."""
    r0 = np.array([(window[0] - 1) / 2, (window[1] - 1) / 2])
    z = positions_px + r0
    c = z.mean(axis=0)
    inv = np.linalg.inv(np.asarray(matrix, dtype=np.float64))
    return c + (z - c) @ inv.T - r0, c
