"""Cut probe-sized windows out of an object and put them back (the sampling operator S_r).

Positions are ``(y, x)`` top-left corners in object pixels (float). A position splits into
an integer part ``floor(p)`` (the window cut from the object) and a fractional part
``p - floor(p)`` in ``[0, 1)`` that moves the probe by a Fourier shift instead; see
``ptyframe.physics.fft`` for the shift convention.
"""

from __future__ import annotations

import torch


def split_positions(positions_px: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (integer corners ``[B, 2]`` int64, fractional parts ``[B, 2]`` float64)."""
    pos = positions_px.to(torch.float64)
    corner = torch.floor(pos)
    return corner.to(torch.int64), pos - corner


def window_index(corners: torch.Tensor, window: tuple[int, int], width: int) -> torch.Tensor:
    """Return flat indices ``[B, M, N]`` of windows into a row-major ``[.., H, width]`` array."""
    m, n = window
    dev = corners.device
    rows = corners[:, 0, None] + torch.arange(m, device=dev)[None, :]  # [B, M]
    cols = corners[:, 1, None] + torch.arange(n, device=dev)[None, :]  # [B, N]
    return rows[:, :, None] * width + cols[:, None, :]


def extract_patches(
    obj: torch.Tensor, corners: torch.Tensor, window: tuple[int, int]
) -> torch.Tensor:
    """Gather windows from ``obj`` ``[..., H, W]`` at integer ``corners`` ``[B, 2]``.

    Returns ``[B, ..., M, N]``. Differentiable (a gather), so autograd can flow into ``obj``.
    """
    h, w = obj.shape[-2:]
    idx = window_index(corners, window, w)  # [B, M, N]
    flat = obj.reshape(*obj.shape[:-2], h * w)
    lead = obj.shape[:-2]
    out = flat[..., idx.reshape(-1)]  # [..., B*M*N]
    out = out.reshape(*lead, idx.shape[0], *window)
    return out.movedim(len(lead), 0)


def scatter_add_patches(
    target: torch.Tensor, patches: torch.Tensor, corners: torch.Tensor
) -> torch.Tensor:
    """Add windows ``[B, ..., M, N]`` into ``target`` ``[..., H, W]`` in place (overlaps sum)."""
    h, w = target.shape[-2:]
    window = (patches.shape[-2], patches.shape[-1])
    idx = window_index(corners, window, w).reshape(-1)
    lead = target.shape[:-2]
    src = patches.movedim(0, len(lead)).reshape(*lead, -1)
    flat = target.reshape(*lead, h * w)
    flat.index_add_(len(lead), idx, src)
    return target


def check_inside(
    positions_px: torch.Tensor, window: tuple[int, int], object_shape: tuple[int, int]
) -> None:
    """Raise ``ValueError`` naming the first position whose window leaves the object."""
    corners, _ = split_positions(positions_px)
    m, n = window
    h, w = object_shape
    bad = (
        (corners[:, 0] < 0)
        | (corners[:, 1] < 0)
        | (corners[:, 0] + m > h)
        | (corners[:, 1] + n > w)
    )
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        y, x = positions_px[i].tolist()
        raise ValueError(
            f"probe position {i} (y={y:.2f}, x={x:.2f}) puts the {m}x{n} window outside the "
            f"{h}x{w} object ({int(bad.sum())} positions do)"
        )
