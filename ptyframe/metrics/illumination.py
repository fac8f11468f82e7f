"""Where the scan lit the object (metric masks, images), and the truth the metrics compare."""

from __future__ import annotations

from typing import Any

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


def truth_reference(dataset: Any) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Return ``(truth object [Ny, Nx], illumination or None)`` of ``dataset``, or None.

    The object is the product of the slices for a multislice truth; the illumination is the
    dataset's own, else ``illumination_map`` of the true probe at the scan positions.
    """
    truth = dataset.truth
    if truth is None or truth.object is None:
        return None
    obj = np.prod(truth.object, axis=0) if truth.object.ndim == 3 else truth.object
    illum = truth.illumination
    if illum is None and truth.probe is not None:
        illum = illumination_map(truth.probe, dataset.geometry.positions_px, obj.shape)
    return obj, illum
