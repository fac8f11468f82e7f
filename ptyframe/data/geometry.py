"""Describe the measurement geometry: positions, window, object frame, energy, pixel size."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: h c in eV m (CODATA 2018), for wavelength_m = HC_EV_M / energy_ev.
HC_EV_M = 1.239841984e-6


def object_frame(positions_px: np.ndarray, window: tuple[int, int]) -> tuple[int, int]:
    """Return the default object shape ``[0, max(y) + M) x [0, max(x) + N)`` (rounded up)."""
    pos = np.asarray(positions_px, dtype=np.float64)
    if pos.size == 0:
        return window
    return (
        int(math.ceil(float(pos[:, 0].max()))) + window[0],
        int(math.ceil(float(pos[:, 1].max()))) + window[1],
    )


@dataclass(frozen=True)
class ScanGeometry:
    """Where each pattern was taken and what the pixels mean.

    ``positions_px`` ``[n_tiles, 2]`` float64: (y, x) top-left corner of the probe window in
    object pixels. ``window`` is the detector / probe shape ``(M, N)``. ``object_shape`` is
    the object frame. ``pixel_size_m`` is the object-plane pixel size.
    """

    positions_px: np.ndarray
    window: tuple[int, int]
    object_shape: tuple[int, int]
    energy_ev: float
    pixel_size_m: float
    free_prop_m: tuple[float, ...] = ()
    theta_rad: tuple[float, ...] = (0.0,)

    @property
    def n_tiles(self) -> int:
        return int(self.positions_px.shape[0])

    @property
    def wavelength_m(self) -> float:
        return HC_EV_M / self.energy_ev

    @property
    def nyquist_per_m(self) -> float:
        """Return the object-plane Nyquist frequency ``1 / (2 dx)`` in cycles per metre."""
        return 0.5 / self.pixel_size_m

    def select(self, indices: np.ndarray) -> ScanGeometry:
        """Return the geometry of a subset of tiles (same object frame)."""
        return ScanGeometry(
            self.positions_px[np.asarray(indices)],
            self.window,
            self.object_shape,
            self.energy_ev,
            self.pixel_size_m,
            self.free_prop_m,
            self.theta_rad,
        )
