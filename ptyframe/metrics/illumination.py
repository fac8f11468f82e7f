"""The total probe intensity over the object: where the scan lit it (metric masks, images)."""

from __future__ import annotations

import numpy as np


def illumination_map(
    probe: np.ndarray, positions_px: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Return ``I(x) = sum_r sum_k |P_k(x - r)|^2`` ``[Ny, Nx]`` (float64).

    ``probe`` ``[K, M, N]`` (modes), ``positions_px`` ``[B, 2]`` top-left corners (floored to
    whole pixels); tiles reaching past the object's edge are clipped.
    """
    inten = np.sum(np.abs(np.asarray(probe)) ** 2, axis=0)
    m, n = inten.shape
    out = np.zeros(shape, dtype=np.float64)
    for y, x in np.floor(np.asarray(positions_px)).astype(int):
        out[y : y + m, x : x + n] += inten[: shape[0] - y, : shape[1] - x]
    return out
