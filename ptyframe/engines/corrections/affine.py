"""Fit a global scan map (scale, rotation, shear, linear drift) from nominal to refined positions.

A stage's errors are partly global: its axes are miscalibrated (scale), not square (shear),
turned against the detector (rotation) and the sample drifts during the scan. The model::

    p_j = c + t + A (n_j - c) + v (tau_j - 1/2)                               (1)

maps the nominal (recorded) positions ``n_j`` ``[N, 2]`` (y, x) to the refined ones ``p_j``;
``c`` is the mean nominal position, ``t`` a translation (the scan's global offset, which the
data cannot see), ``A`` ``[2, 2]`` acts on ``(y, x)`` column vectors, ``v`` the drift over
the whole scan and ``tau_j = j / (N - 1)`` the acquisition time of pattern ``j`` (scan
order). (1) is linear in ``(t, A, v)``: per axis an ordinary least-squares fit with the design
matrix ``X = [1, n_y - c_y, n_x - c_x, tau - 1/2]`` (the last column without ``drift``),
solved by ``numpy.linalg.lstsq``. (The map is a few global parameters
fitted to many per-position estimates, so it averages their noise; pulling the positions
towards it, ``PositionConfig.affine_weight``, is a constraint on the per-position corrections.)

``A`` is read as ``A = R(theta) H(s) diag(1 + sigma_y, 1 + sigma_x)`` with ``R(theta) =
[[cos, -sin], [sin, cos]]`` (the QR decomposition with a positive diagonal:
``A = Q U``, ``Q = R(theta)``, ``U = [[1 + sigma_y, s (1 + sigma_x)], [0, 1 + sigma_x]]``),
the form of ``ptyframe.simulation.nuisances.scan_matrix``.

A raster scanned row by row at constant speed has ``tau`` an exact linear function of
``(y, x)``: a linear drift is then the same as a scale and shear, and no fit can tell them
apart. ``fit_scan_map`` leaves the drift out (``v = 0``, the map in ``A``) when the time
column is explained by the positions to within ``COLLINEAR`` (``1 - R^2``). A jittered
raster is such a case: what is left of ``tau`` after the fit on the recorded positions is
made of their jitter and of their errors, so a drift column kept there fits the position
errors themselves (and the position correction, which holds the recorded map, could never
remove them); ``COLLINEAR`` is set so that a raster whose jitter and errors are a fraction
of its step counts as collinear, while a spiral or a random scan keeps its drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: ``1 - R^2`` of the time column against the positions below which the drift is left out
COLLINEAR = 1e-2


@dataclass(frozen=True)
class ScanMap:
    """The fitted map (1): ``positions = apply(nominal)``."""

    centre: np.ndarray  # [2] c
    offset: np.ndarray  # [2] t
    matrix: np.ndarray  # [2, 2] A
    drift: np.ndarray  # [2] v (over the whole scan)

    @classmethod
    def identity(cls, nominal_px: np.ndarray) -> ScanMap:
        """Return the map that changes nothing, centred on ``nominal_px``."""
        c = np.asarray(nominal_px, dtype=np.float64).mean(axis=0)
        return cls(c, np.zeros(2), np.eye(2), np.zeros(2))

    def apply(self, nominal_px: np.ndarray) -> np.ndarray:
        """Return ``c + t + A (n - c) + v (tau - 1/2)`` ``[N, 2]`` float64."""
        n = np.asarray(nominal_px, dtype=np.float64)
        tau = scan_time(n.shape[0])
        return (
            self.centre
            + self.offset
            + (n - self.centre) @ self.matrix.T
            + (tau - 0.5)[:, None] * self.drift
        )

    def parameters(self) -> dict[str, float]:
        """Return ``scale_y, scale_x`` (1 + sigma), ``rotation_deg``, ``shear``, drift, offset."""
        theta, scale_y, scale_x, shear = decompose(self.matrix)
        return {
            "scale_y": scale_y,
            "scale_x": scale_x,
            "rotation_deg": math.degrees(theta),
            "shear": shear,
            "drift_y_px": float(self.drift[0]),
            "drift_x_px": float(self.drift[1]),
            "offset_y_px": float(self.offset[0]),
            "offset_x_px": float(self.offset[1]),
        }

    def as_array(self) -> np.ndarray:
        """Return ``[c_y, c_x, t_y, t_x, A_yy, A_yx, A_xy, A_xx, v_y, v_x]`` float64."""
        return np.concatenate([self.centre, self.offset, self.matrix.ravel(), self.drift])

    @classmethod
    def from_array(cls, a: np.ndarray) -> ScanMap:
        """Invert ``as_array``."""
        a = np.asarray(a, dtype=np.float64)
        return cls(a[0:2].copy(), a[2:4].copy(), a[4:8].reshape(2, 2).copy(), a[8:10].copy())


def scan_time(n: int) -> np.ndarray:
    """Return ``tau_j = j / (N - 1)`` ``[N]`` float64 (0 for one position)."""
    return np.arange(n, dtype=np.float64) / max(n - 1, 1)


def design_matrix(nominal_px: np.ndarray, index: np.ndarray, n_scan: int) -> np.ndarray:
    """Return ``X = [1, n_y - c_y, n_x - c_x, tau - 1/2]`` ``[B, 3 or 4]`` of (1).

    ``nominal_px`` ``[B, 2]`` are the positions ``index`` of a scan of ``n_scan``; the time
    column is left out where it is collinear with the positions (module docstring).
    """
    n = np.asarray(nominal_px, dtype=np.float64)
    c = n.mean(axis=0)
    cols = [np.ones(n.shape[0]), n[:, 0] - c[0], n[:, 1] - c[1]]
    if n.shape[0] > 4 and not _time_is_linear(n, scan_time(n_scan)[index]):
        cols.append(scan_time(n_scan)[index] - 0.5)
    return np.stack(cols, axis=1)


def fit_scan_map(nominal_px: np.ndarray, refined_px: np.ndarray, drift: bool = True) -> ScanMap:
    """Return the least-squares map (1) from ``nominal_px`` to ``refined_px`` (``[N, 2]`` each).

    With fewer than 4 positions (5 with the drift) the map is not determined: the identity
    plus the mean offset is returned.
    """
    n = np.asarray(nominal_px, dtype=np.float64)
    p = np.asarray(refined_px, dtype=np.float64)
    c = n.mean(axis=0)
    cols = [np.ones(n.shape[0]), n[:, 0] - c[0], n[:, 1] - c[1]]
    if drift and not _time_is_linear(n, scan_time(n.shape[0])):
        cols.append(scan_time(n.shape[0]) - 0.5)
    drift = len(cols) == 4
    x = np.stack(cols, axis=1)
    if n.shape[0] < x.shape[1] + 1 or np.linalg.matrix_rank(x[:, :3]) < 3:
        return ScanMap(c, (p - n).mean(axis=0), np.eye(2), np.zeros(2))
    coef, *_ = np.linalg.lstsq(x, p - c, rcond=None)  # [4 or 3, 2]
    matrix = coef[1:3].T.copy()
    v = coef[3].copy() if drift else np.zeros(2)
    return ScanMap(c, coef[0].copy(), matrix, v)


def _time_is_linear(nominal_px: np.ndarray, tau: np.ndarray) -> bool:
    """Return True when ``tau`` is (nearly) a linear function of the positions (module doc)."""
    tau = tau - tau.mean()
    x = np.column_stack([np.ones(nominal_px.shape[0]), nominal_px - nominal_px.mean(axis=0)])
    coef, *_ = np.linalg.lstsq(x, tau, rcond=None)
    total = float((tau**2).sum())
    return total == 0.0 or float(((tau - x @ coef) ** 2).sum()) < COLLINEAR * total


def decompose(matrix: np.ndarray) -> tuple[float, float, float, float]:
    """Return ``(theta_rad, 1 + sigma_y, 1 + sigma_x, s)`` of ``A = R(theta) H(s) diag(...)``."""
    q, u = np.linalg.qr(np.asarray(matrix, dtype=np.float64))
    signs = np.sign(np.diag(u))
    signs[signs == 0] = 1.0
    q, u = q * signs[None, :], u * signs[:, None]  # positive diagonal of U
    theta = math.atan2(q[1, 0], q[0, 0])
    sy, sx = float(u[0, 0]), float(u[1, 1])
    shear = float(u[0, 1] / sx) if sx != 0 else 0.0
    return theta, sy, sx, shear


def remove_offset(positions_px: np.ndarray, reference_px: np.ndarray) -> np.ndarray:
    """Return ``positions - mean(positions - reference)``: the global offset removed."""
    p = np.asarray(positions_px, dtype=np.float64)
    r = np.asarray(reference_px, dtype=np.float64)
    return p - (p - r).mean(axis=0)


def position_rms_px(positions_px: np.ndarray, truth_px: np.ndarray) -> float:
    """Return the 2-D RMS distance to ``truth_px`` after removing the global offset."""
    d = remove_offset(positions_px, truth_px) - np.asarray(truth_px, dtype=np.float64)
    return float(np.sqrt((d**2).sum(axis=1).mean()))
