"""Differentiable geometry for parameter refinement (Adorym supplement section D.2).

* Affine distortion of projection images (supp. eq. S18)::

      A = R(phi) . Shear(c_x, c_y) . Scale(S_x, S_y) . Translate(dx, dy)

  parameterised per image as ``[phi, c_x, c_y, S_x - 1, S_y - 1, dx, dy]`` (all zero is the
  identity; ``dx, dy`` in pixels) and applied by bilinear resampling (``grid_sample``), so the
  gradient reaches the parameters (supp. section D.2, "affine transform").
* Rotation of a volume ``[C, Nz, Ny, Nx]`` about the vertical (y) axis by ``theta`` and small
  tilts about x, y, z (supp. eq. S17 in each plane), by trilinear ``grid_sample``; the output
  voxel ``r_theta`` samples the 0-degree volume at ``R r_theta``.

Coordinates follow ``torch.nn.functional.affine_grid`` with ``align_corners=False``: the
normalised range ``[-1, 1]`` spans each axis, so rotations mixing x and z are rigid only for
``Nz == Nx`` (checked by the tomography model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Number of parameters of one affine distortion (see module docstring).
AFFINE_PARAMS = 7


def affine_matrices(params: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Return ``[D, 2, 3]`` ``affine_grid`` matrices for ``[D, 7]`` parameters (eq. S18).

    The image is sampled at ``A^-1``-free form: output pixel ``r`` takes the input at
    ``A r`` (normalised coordinates), which for small parameters is the inverse distortion;
    refinement only needs a smooth, identity-at-zero family.
    """
    h, w = shape
    p = params.to(torch.float64)
    phi, cx, cy, sx, sy, dx, dy = p.unbind(-1)
    one = torch.ones_like(phi)
    zero = torch.zeros_like(phi)
    rot = torch.stack(
        [
            torch.stack([phi.cos(), -phi.sin(), zero], -1),
            torch.stack([phi.sin(), phi.cos(), zero], -1),
            torch.stack([zero, zero, one], -1),
        ],
        -2,
    )
    shear = torch.stack(
        [
            torch.stack([one, cx, zero], -1),
            torch.stack([cy, one, zero], -1),
            torch.stack([zero, zero, one], -1),
        ],
        -2,
    )
    scale = torch.stack(
        [
            torch.stack([1.0 + sx, zero, zero], -1),
            torch.stack([zero, 1.0 + sy, zero], -1),
            torch.stack([zero, zero, one], -1),
        ],
        -2,
    )
    # pixels -> normalised units: a shift of one pixel is 2 / n
    trans = torch.stack(
        [
            torch.stack([one, zero, 2.0 * dx / w], -1),
            torch.stack([zero, one, 2.0 * dy / h], -1),
            torch.stack([zero, zero, one], -1),
        ],
        -2,
    )
    a = rot @ shear @ scale @ trans
    return a[..., :2, :]


def warp_images(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Resample real ``images`` ``[B, H, W]`` with ``[B, 2, 3]`` matrices (bilinear, zeros)."""
    b, h, w = images.shape
    x = images.unsqueeze(1)
    grid = F.affine_grid(matrices.to(x.dtype), [b, 1, h, w], align_corners=False)
    return F.grid_sample(
        x, grid, mode="bilinear", padding_mode="border", align_corners=False
    ).squeeze(1)


def rotation_matrix(theta: torch.Tensor, tilt: torch.Tensor | None = None) -> torch.Tensor:
    """Return the ``[3, 3]`` matrix acting on ``(x, y, z)``: ``R_y(theta + t_y) R_x(t_x) R_z(t_z)``.

    ``theta`` is a 0-d tensor (radians), ``tilt`` ``[3]`` (t_x, t_y, t_z) or None.
    """
    th = theta.to(torch.float64)
    if tilt is None:
        tx = ty = tz = torch.zeros((), dtype=torch.float64, device=th.device)
    else:
        tx, ty, tz = tilt.to(torch.float64).unbind(0)
    a = th + ty
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    ry = torch.stack(
        [
            torch.stack([a.cos(), zero, -a.sin()]),
            torch.stack([zero, one, zero]),
            torch.stack([a.sin(), zero, a.cos()]),
        ]
    )
    rx = torch.stack(
        [
            torch.stack([one, zero, zero]),
            torch.stack([zero, tx.cos(), -tx.sin()]),
            torch.stack([zero, tx.sin(), tx.cos()]),
        ]
    )
    rz = torch.stack(
        [
            torch.stack([tz.cos(), -tz.sin(), zero]),
            torch.stack([tz.sin(), tz.cos(), zero]),
            torch.stack([zero, zero, one]),
        ]
    )
    return ry @ rx @ rz


def rotate_volume(volume: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Return ``volume`` ``[C, Nz, Ny, Nx]`` (real) resampled at ``matrix @ r`` (trilinear).

    Outside the volume the samples are zero (vacuum for delta / beta).
    """
    c, nz, ny, nx = volume.shape
    theta = torch.cat([matrix, torch.zeros(3, 1, dtype=matrix.dtype, device=matrix.device)], 1)
    grid = F.affine_grid(theta[None].to(volume.dtype), [1, c, nz, ny, nx], align_corners=False)
    out = F.grid_sample(
        volume[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out[0]
