"""The photon dose per object pixel of a scan, from its measurements (a noise level).

Poisson counting noise sets the noise of a ptychographic object: the relative noise of a
pixel's transmission falls as ``1 / sqrt(dose)`` with the dose the number of photons that
passed through it (e.g. Schropp & Schroer, New J. Phys. 12 (2010) 035016). With ``I_j`` the
counts of pattern ``j`` (``|amplitude|^2`` summed over its measured pixels) and ``A`` the number
of object pixels covered by at least one probe window,

    dose = sum_j I_j / A      [photons per object pixel].

Under MPI each process holds some of the tiles: the counts are summed over the processes
(``distribution.allreduce_sum_``), and ``A`` is taken from the whole scan's positions, so
every process gets the same number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def covered_pixels(
    positions_px: np.ndarray, window: tuple[int, int], shape: tuple[int, int]
) -> int:
    """Return how many object pixels lie under at least one probe window.

    ``positions_px`` ``[n, 2]`` are (y, x) top-left corners (rounded to whole pixels);
    ``window`` the probe shape and ``shape`` the object frame.
    """
    mask = np.zeros(shape, dtype=bool)
    for y, x in np.rint(np.asarray(positions_px, dtype=np.float64)).astype(int):
        y0, x0 = max(y, 0), max(x, 0)
        mask[y0 : max(y + window[0], 0), x0 : max(x + window[1], 0)] = True
    return int(mask.sum())


def photons_per_object_pixel(measurements: Any, distribution: Any | None = None) -> float:
    """Return ``sum_j I_j / A`` for ``measurements`` (the run's patterns: ``Measurements`` or
    a pattern source, ``ptyframe.data.feed.PatternData``).

    The counts are the patterns' sums ``intensity_sum`` (per pattern in float64, then over
    the patterns: the same value in memory and streamed). ``distribution`` (optional) sums
    them over processes.
    """
    local = torch.tensor([measurements.intensity_sum()], dtype=torch.float64)
    total = distribution.allreduce_sum_(local) if distribution is not None else local
    geom = measurements.geometry
    area = covered_pixels(geom.positions_px, tuple(geom.window), tuple(geom.object_shape))
    return float(total[0]) / max(area, 1)
