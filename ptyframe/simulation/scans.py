"""Generate scan positions with a given overlap ratio.

Every scan is built from its config dataclass and has
``generate(probe_diameter_px: float, rng: np.random.Generator) -> np.ndarray`` returning
float64 ``[N, 2]`` positions: ``(y, x)`` top-left corners of the probe window in object pixels
(the data-exchange convention), sub-pixel values allowed.

Overlap ratio
    ``overlap = 1 - step / D`` with ``D`` the probe diameter from
    ``ptyframe.simulation.probes.probe_diameter_px`` (the circle holding 90 % of the probe's
    intensity) and ``step`` the distance between neighbouring positions: the grid pitch of a
    raster, the median nearest-neighbour distance of a Fermat spiral. ``overlap`` lies in
    ``[0, 1)``; 0 means touching 90 %-power circles. (The linear overlap of Bunk et al.,
    Ultramicroscopy 108, 481 (2008); the PINE paper quotes 37.5-75 % for its real data.)

After jitter the positions are shifted so that their minimum is ``(margin_px, margin_px)``,
so jitter never makes a position negative. ``integer_positions`` rounds the final positions.

``raster``
    ``n_y x n_x`` grid, row-major (y slow), pitch ``step`` in both directions (``step_px``
    when set, which then takes precedence over ``overlap``), each position
    jittered by an independent uniform offset in ``[-jitter_px, jitter_px]`` per axis. The
    default 1 px of jitter (a realistic stage error) breaks the translational symmetry of a
    perfect grid, which otherwise lets joint object/probe recovery drift into the "raster grid
    pathology" (Thibault et al., Ultramicroscopy 109, 338 (2009)); set 0 for a perfect grid.

``step_raster``
    The benchmarks' square grid of whole pixels: ``n x n`` positions ``step_px`` apart,
    row-major, each jittered by a uniform offset in ``[-jitter_px, jitter_px]`` per axis and
    rounded to whole pixels *before* the shift to a zero minimum (``raster`` with
    ``integer_positions`` shifts, then rounds: the two differ by a pixel here and there). The
    probe diameter is not used. The peer table's cases (``conf/case/natural_1e6.yaml``) are on
    it.

``fermat``
    Fermat spiral (Huang et al., Opt. Express 22, 12634 (2014)): point ``n = 1..N`` at radius
    ``c sqrt(n)`` and angle ``n * 137.508 deg`` (the golden angle); ``c`` is set so that the
    median nearest-neighbour distance equals ``step`` (then the smallest one is ~0.96 step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ptyframe.errors import ConfigError
from ptyframe.simulation.phantoms import require

GOLDEN_ANGLE_RAD = math.pi * (3.0 - math.sqrt(5.0))


def step_from_overlap(overlap: float, probe_diameter_px: float) -> float:
    """Return ``step = (1 - overlap) * D`` in pixels (see the module docstring)."""
    if not probe_diameter_px > 0:
        raise ConfigError(f"probe diameter {probe_diameter_px} px must be > 0")
    return (1.0 - overlap) * float(probe_diameter_px)


def nearest_neighbour_px(positions_px: np.ndarray) -> np.ndarray:
    """Return each position's distance ``[N]`` to its nearest other position."""
    from scipy.spatial import cKDTree

    pos = np.asarray(positions_px, dtype=np.float64)
    if pos.shape[0] < 2:
        return np.full(pos.shape[0], np.inf)
    dist, _ = cKDTree(pos).query(pos, k=2)
    return dist[:, 1]


def _finish(
    pos: np.ndarray, rng: np.random.Generator, jitter_px: float, margin_px: float, integer: bool
) -> np.ndarray:
    if jitter_px > 0:
        pos = pos + rng.uniform(-jitter_px, jitter_px, size=pos.shape)
    pos = pos - pos.min(axis=0, keepdims=True) + margin_px
    if integer:
        pos = np.round(pos)
    return np.ascontiguousarray(pos, dtype=np.float64)


def _check_common(cfg: Any) -> None:
    require(cfg.name, "overlap", cfg.overlap, 0.0, 1.0, hi_open=True)
    require(cfg.name, "jitter_px", cfg.jitter_px, 0.0)
    require(cfg.name, "margin_px", cfg.margin_px, 0.0)


@dataclass
class RasterScanConfig:
    """Rectangular grid with optional uniform jitter."""

    name: str = "raster"
    n_y: int = 12
    n_x: int = 12
    overlap: float = 0.7
    jitter_px: float = 1.0
    margin_px: float = 0.0
    integer_positions: bool = False
    #: Grid pitch in pixels; when set it replaces the pitch derived from ``overlap``.
    step_px: float | None = None

    def __post_init__(self) -> None:
        require(self.name, "n_y", self.n_y, 1)
        require(self.name, "n_x", self.n_x, 1)
        if self.step_px is not None:
            require(self.name, "step_px", self.step_px, 0.0, lo_open=True)
        _check_common(self)


class RasterScan:
    """Raster grid; see the module docstring."""

    def __init__(self, config: RasterScanConfig) -> None:
        self.config = config

    def generate(self, probe_diameter_px: float, rng: np.random.Generator) -> np.ndarray:
        """Return positions ``[n_y * n_x, 2]`` float64 (y, x), row-major."""
        c = self.config
        if c.step_px is not None:
            step = float(c.step_px)
        else:
            step = step_from_overlap(c.overlap, probe_diameter_px)
        yy, xx = np.meshgrid(np.arange(c.n_y) * step, np.arange(c.n_x) * step, indexing="ij")
        pos = np.stack([yy.ravel(), xx.ravel()], axis=1)
        return _finish(pos, rng, c.jitter_px, c.margin_px, c.integer_positions)


@dataclass
class StepRasterScanConfig:
    """Square grid of whole pixels at a fixed pitch (jitter rounded before the shift)."""

    name: str = "step_raster"
    n: int = 25
    step_px: float = 16.0
    jitter_px: float = 2.0

    def __post_init__(self) -> None:
        require(self.name, "n", self.n, 1)
        require(self.name, "step_px", self.step_px, 0.0, lo_open=True)
        require(self.name, "jitter_px", self.jitter_px, 0.0)


class StepRasterScan:
    """Step raster; see the module docstring."""

    def __init__(self, config: StepRasterScanConfig) -> None:
        self.config = config

    def generate(self, probe_diameter_px: float, rng: np.random.Generator) -> np.ndarray:
        """Return whole-pixel positions ``[n * n, 2]`` float64 (y, x), row-major, min 0."""
        c = self.config
        yy, xx = np.meshgrid(np.arange(c.n), np.arange(c.n), indexing="ij")
        pos = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.float64) * float(c.step_px)
        pos = np.round(pos + rng.uniform(-c.jitter_px, c.jitter_px, size=pos.shape))
        return np.ascontiguousarray(pos - pos.min(axis=0, keepdims=True), dtype=np.float64)


@dataclass
class FermatScanConfig:
    """Fermat spiral with a given number of points."""

    name: str = "fermat"
    n_points: int = 144
    overlap: float = 0.7
    jitter_px: float = 0.0
    margin_px: float = 0.0
    integer_positions: bool = False

    def __post_init__(self) -> None:
        require(self.name, "n_points", self.n_points, 1)
        _check_common(self)


class FermatScan:
    """Fermat spiral; see the module docstring."""

    def __init__(self, config: FermatScanConfig) -> None:
        self.config = config

    def generate(self, probe_diameter_px: float, rng: np.random.Generator) -> np.ndarray:
        """Return positions ``[n_points, 2]`` float64 (y, x) in spiral order."""
        c = self.config
        step = step_from_overlap(c.overlap, probe_diameter_px)
        n = np.arange(1, int(c.n_points) + 1, dtype=np.float64)
        r, theta = np.sqrt(n), n * GOLDEN_ANGLE_RAD
        pos = np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1)
        if pos.shape[0] > 1:
            pos *= step / float(np.median(nearest_neighbour_px(pos)))
        return _finish(pos, rng, c.jitter_px, c.margin_px, c.integer_positions)
