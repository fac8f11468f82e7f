"""Resolution without ground truth: the half-set FRC of a reconstruction.

The scan positions are split into two interleaved halves, each half is reconstructed alone
with the same engine and settings, the two objects are compared by the FRC, and the
resolution is where the FRC falls below the 1/2-bit threshold (van Heel & Schatz, J. Struct.
Biol. 151, 250, 2005) -- the resolution beamline users quote for measured data, which has no
truth.

Split (``split_halves``)
    A checkerboard over the scan's rows and columns: along each axis the sorted coordinates
    are cut into rows where consecutive values jump by more than half the median
    nearest-neighbour distance ``s``; position ``r`` in row ``c_y`` and column ``c_x`` goes to
    half ``(c_y + c_x) mod 2``. On a (jittered) raster each half is a raster rotated by 45
    degrees with step ``sqrt 2 s`` covering the whole field (not alternate rows, which would
    leave one half without overlap along an axis). Scans without rows (a spiral) give an
    unbalanced checkerboard (fewer than 40 % in one half); then alternate scan indices are
    used, which on a Fermat spiral interleave evenly.

Comparison (``compare_halves``)
    Half B's object is aligned onto half A's by ``ptyframe.metrics.align.prepare_pair`` (POC
    sub-pixel shift, complex scale/phase), over the region lit by *both* halves: each half's
    illumination ``I_h = sum_r |P_h(x - r)|^2`` of its own reconstructed probe at its own
    positions, normalised to its maximum, and the map ``min(I_A / max I_A, I_B / max I_B)``
    thresholded at ``threshold`` (1 %). Both objects become windowed deviations with one
    smooth window (no vacuum, see ``ptyframe.metrics.align``), and the 1/2-bit threshold uses
    the ring counts scaled by the window's effective support (``ptyframe.metrics.frc``).

Each half holds half the dose, so the half-set FRC measures the resolution of a
half-dose reconstruction; it is the usual, conservative number (no full-set correction is
applied).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptyframe.errors import DataValidationError
from ptyframe.metrics.align import PreparedPair, prepare_pair
from ptyframe.metrics.frc import REPORTED_BANDS, FrcResult, frc_of_pair
from ptyframe.metrics.illumination import illumination_map

__all__ = ["HalfsetResult", "compare_halves", "split_halves", "write_halfset"]


def split_halves(positions_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the tile indices ``(half_a, half_b)`` of the checkerboard split (module doc)."""
    from ptyframe.simulation.scans import nearest_neighbour_px

    pos = np.asarray(positions_px, dtype=np.float64)
    n = pos.shape[0] if pos.ndim == 2 else 0
    if n < 4:
        raise DataValidationError(
            f"half-set FRC needs at least 4 scan positions, got {n}; each half must overlap"
        )
    step = float(np.median(nearest_neighbour_px(pos)))
    idx = np.arange(n)
    if step > 0:
        parity = (_rows(pos[:, 0], 0.5 * step) + _rows(pos[:, 1], 0.5 * step)) % 2
        a, b = idx[parity == 0], idx[parity == 1]
        if min(len(a), len(b)) >= 0.4 * n:
            return a, b
    return idx[0::2], idx[1::2]


def _rows(coord: np.ndarray, gap: float) -> np.ndarray:
    """Return each value's row index: sorted values start a new row after a jump > ``gap``."""
    order = np.argsort(coord, kind="stable")
    jumps = np.concatenate([[0], (np.diff(coord[order]) > gap).astype(np.int64)])
    rows = np.empty(len(coord), dtype=np.int64)
    rows[order] = np.cumsum(jumps)
    return rows


@dataclass
class HalfsetResult:
    """The half-set comparison: FRC curve, aligned pair and the resolutions."""

    frc: FrcResult
    pair: PreparedPair
    n_tiles: tuple[int, int]

    @property
    def resolution_half_bit_m(self) -> float:
        """Return ``1 / f_cross`` at the 1/2-bit threshold (NaN: never crosses)."""
        r = self.frc.resolution_m("half_bit")
        return math.nan if r is None else r

    def summary(self) -> dict[str, Any]:
        """Return the numbers as a JSON-ready dict (resolutions in nm, bands, shift)."""
        half = self.resolution_half_bit_m
        seventh = self.frc.resolution_m("1/7")
        out: dict[str, Any] = {
            "resolution_half_bit_nm": None if math.isnan(half) else half * 1e9,
            "resolution_one_seventh_nm": None if seventh is None else seventh * 1e9,
            "pixel_size_nm": self.frc.pixel_size_m * 1e9,
            "n_tiles": list(self.n_tiles),
            "shift_px": list(self.pair.shift_yx),
        }
        for f, stem in REPORTED_BANDS.items():
            out[f"frc_{stem}_nyquist"] = self.frc.band(f)
        return out


def compare_halves(
    object_a: np.ndarray,
    object_b: np.ndarray,
    illumination_a: np.ndarray,
    illumination_b: np.ndarray,
    pixel_size_m: float,
    threshold: float = 0.01,
    upsample: int = 20,
) -> tuple[FrcResult, PreparedPair]:
    """Return the FRC of two half-set objects ``[Ny, Nx]`` over the region lit by both."""
    maps = []
    for illum in (illumination_a, illumination_b):
        arr = np.asarray(illum, dtype=np.float64)
        peak = float(np.max(arr)) if arr.size else 0.0
        if not peak > 0:
            raise DataValidationError("a half's illumination map has no positive value")
        maps.append(arr / peak)
    both = np.minimum(maps[0], maps[1])
    pair = prepare_pair(object_b, object_a, both, threshold=threshold, upsample=upsample)
    return frc_of_pair(pair, pixel_size_m), pair


def _object_2d(obj: np.ndarray) -> np.ndarray:
    arr = np.asarray(obj)
    return np.prod(arr, axis=0) if arr.ndim == 3 else arr


def halfset_from_runs(
    objects: tuple[np.ndarray, np.ndarray],
    probes: tuple[np.ndarray, np.ndarray],
    positions: tuple[np.ndarray, np.ndarray],
    pixel_size_m: float,
    threshold: float = 0.01,
) -> HalfsetResult:
    """Return the ``HalfsetResult`` of two half reconstructions (objects, probes, positions)."""
    objs = [_object_2d(o) for o in objects]
    illums = [
        illumination_map(np.asarray(p).reshape(-1, *np.shape(p)[-2:]), pos, objs[0].shape)
        for p, pos in zip(probes, positions, strict=True)
    ]
    res, pair = compare_halves(objs[0], objs[1], illums[0], illums[1], pixel_size_m, threshold)
    return HalfsetResult(res, pair, (len(positions[0]), len(positions[1])))


def write_halfset(result: HalfsetResult, out_dir: str | Path, title: str = "") -> list[Path]:
    """Write ``halfset.json`` (numbers and curve) and ``halfset_frc.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = result.frc
    data = result.summary()
    data["curve"] = {
        "freq_per_m": [float(v) for v in res.freq_per_m],
        "frc": [None if not np.isfinite(v) else float(v) for v in res.frc],
        "half_bit": [None if not np.isfinite(v) else float(v) for v in res.half_bit],
    }
    json_path = out / "halfset.json"
    json_path.write_text(json.dumps(data, indent=1))
    return [json_path, _plot(result, out / "halfset_frc.png", title)]


def _plot(result: HalfsetResult, path: Path, title: str) -> Path:
    from ptyframe.io.images import frc_image

    res = result.frc
    res_m = result.resolution_half_bit_m
    return frc_image(
        res.freq_per_m,
        res.frc,
        res.half_bit,
        res.nyquist_per_m,
        path.parent,
        resolution_m=res_m if math.isfinite(res_m) else None,
        against="the other half of the scan",
        name=path.name,
        first_ring=max(int(res.first_ring), 1),
        title=title,
    )
