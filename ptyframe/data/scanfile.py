"""Turn what a reader found (``ScanFile``) into a ``PtychoDataset`` in object pixels.

Geometry. A window of ``C`` raw detector pixels (the crop, or the whole frame) of pitch
``p`` at distance ``z`` gives object pixels ``dx = lambda z / (C p)``; binning by ``b`` keeps
``dx`` and makes the window ``M = C / b`` pixels. With the reader's real-space frame extent
``E = lambda z / p`` (per axis, after orientation), ``dx = E / C``; the two axes must agree.

Positions. A reader gives beam centres ``c`` in metres (arbitrary origin); the top-left
corner of window r in object pixels is ``c_r / dx - M // 2``. When the origin is arbitrary
(a stage's) or a corner would be negative, every position is shifted by the same whole number
of pixels so that the smallest lies in ``[0, 1)`` (the sub-pixel part of the scan is kept).
A data-exchange file whose window is unchanged keeps its stored positions exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptyframe.data.conebeam import near_field_pixels
from ptyframe.data.dataset import PtychoDataset, _read_frames, _to_intensity
from ptyframe.data.fieldcheck import check_field, field_statistics
from ptyframe.data.geometry import HC_EV_M, ScanGeometry, object_frame
from ptyframe.data.preprocess import Preprocess, compose, orient, pattern_centre
from ptyframe.data.reader import ScanFile, fail
from ptyframe.data.validate import MAX_OBJECT_PX, scan_values
from ptyframe.errors import DataValidationError

#: Relative difference allowed between the object pixel along y and along x.
SQUARE_TOLERANCE = 1e-3
#: Frames averaged to find the pattern centre for a crop.
CENTRE_FRAMES = 256


@dataclass
class DetectorOptions:
    """Detector preprocessing chosen in the config (see ``FileDataConfig``)."""

    orientation: int = 0
    mask: str | None = None
    dark: str | None = None
    saturation: float | None = None
    crop: int | None = None
    bin: int = 1
    check_values: bool = True
    #: ``far`` or ``near``: the object-pixel rule (``ptyframe.data.conebeam``).
    field: str = "far"
    #: Near field: the sample's distance downstream of the focus (cone beam), or None.
    focus_to_sample_m: float | None = None
    #: Test the frames against the field they are read in (``ptyframe.data.fieldcheck``).
    check_field: bool = True


def load_array(spec: str, data_path: str, what: str) -> np.ndarray:
    """Load ``FILE.npy``, ``FILE.h5:/dataset`` or ``/dataset`` (inside the data file)."""
    import h5py

    if spec.endswith(".npy") and ":" not in Path(spec).name:
        if not Path(spec).is_file():
            raise fail(data_path, f"data.{what} file {spec} not found", "check the path")
        return np.asarray(np.load(spec))
    file, key = spec.rsplit(":", 1) if ":" in spec else (data_path, spec)
    if not Path(file).is_file():
        raise fail(data_path, f"data.{what} file {file} not found", "check the path")
    with h5py.File(file, "r") as f:
        if key.lstrip("/") not in f:
            raise fail(
                data_path,
                f"data.{what}: no dataset {key} in {file}",
                f"give data.{what}=FILE.npy, FILE.h5:/dataset or /dataset in the data file",
            )
        return np.asarray(f[key.lstrip("/")][()])


def _frame_array(arr: np.ndarray, frame: tuple[int, int], what: str, path: str) -> np.ndarray:
    if arr.ndim == 3 and what == "dark":
        arr = arr.mean(axis=0)
    if arr.shape != frame:
        raise fail(
            path,
            f"data.{what} is {'x'.join(map(str, arr.shape))} but the frames are "
            f"{frame[0]}x{frame[1]} (as stored)",
            f"give one data.{what} value per detector pixel, in the file's frame orientation",
        )
    return arr


def _window(
    scan: ScanFile, pre: Preprocess, opts: DetectorOptions, frame: tuple[int, int]
) -> tuple[tuple[int, int, int] | None, dict[str, Any]]:
    """Return the crop window (found around the mean pattern's centre) and its record."""
    h, w = frame
    if opts.crop is None:
        if h != w:
            raise fail(
                scan.path,
                f"patterns are {h}x{w}, not square",
                f"set data.crop=N (N <= {min(h, w)}) to cut a square window around the centre",
            )
        return None, {}
    c = int(opts.crop)
    if c > min(h, w):
        raise fail(
            scan.path,
            f"data.crop={c} is larger than the {h}x{w} frames",
            f"choose data.crop <= {min(h, w)}",
        )
    import h5py

    n = scan.shape[1]
    idx = np.unique(np.linspace(0, n - 1, min(n, CENTRE_FRAMES)).round().astype(np.int64))
    with h5py.File(scan.path, "r") as f:
        raw = _read_frames(f[scan.data_key], scan.layout, 0, idx)
    frames = pre(_to_intensity(np.asarray(raw), scan.quantity))
    cy, cx = pattern_centre(np.where(frames >= 0, frames, 0).mean(axis=0))
    y0, x0 = cy - c // 2, cx - c // 2
    if y0 < 0 or x0 < 0 or y0 + c > h or x0 + c > w:
        raise fail(
            scan.path,
            f"a {c}x{c} window around the pattern centre ({cy}, {cx}) leaves the {h}x{w} frame",
            "choose a smaller data.crop",
        )
    return (y0, x0, c), {"pattern_centre_px": [cy, cx]}


def _positions(
    scan: ScanFile, pixel: float, m: int, c: int, b: int
) -> tuple[np.ndarray, tuple[int, int], np.ndarray, bool]:
    """Return top-left positions, object frame, origin shift and whether stored ones were kept."""
    raw_frame = scan.frame_shape
    keep = scan.positions_px is not None and c == raw_frame[0] == raw_frame[1] and b == 1
    if keep:
        pos = np.array(scan.positions_px, dtype=np.float64)
    else:
        pos = scan.centres_m / pixel - m // 2
    shift = np.zeros(2)
    if scan.arbitrary_origin or (pos < 0).any():
        shift = np.floor(pos.min(axis=0) + 1e-6)
        pos = pos - shift
        keep = keep and not shift.any()
    shape = scan.object_shape if keep and scan.object_shape else object_frame(pos, (m, m))
    if max(shape) > MAX_OBJECT_PX:
        raise fail(
            scan.path,
            f"the positions span an object of {shape} pixels (> {MAX_OBJECT_PX})",
            "check the unit of the positions",
        )
    return pos, shape, shift, keep


def _pixel(
    scan: ScanFile,
    opts: DetectorOptions,
    code: int,
    extent: tuple[float, float],
    c: int,
    b: int,
) -> tuple[tuple[float, float], tuple[float, ...], dict[str, Any]]:
    """Return the object pixel (y, x), the distances and their record, far or near field."""
    if opts.field == "near":
        near = near_field_pixels(scan, code >= 4, b, opts.focus_to_sample_m)
        return near.pixel_m, near.free_prop_m, near.conventions
    if opts.focus_to_sample_m is not None:
        raise fail(
            scan.path,
            "data.focus_to_sample_m is set but the scan is read as far field",
            "reconstruct it as near field: +imaging=nearfield_conebeam (or data.field=near "
            "with a near-field physics), or drop data.focus_to_sample_m",
        )
    return (extent[0] / c, extent[1] / c), scan.free_prop_m, {}


def build_dataset(scan: ScanFile, opts: DetectorOptions) -> PtychoDataset:
    """Apply the detector options to ``scan`` and return the lazy dataset."""
    path = scan.path
    code = compose(scan.file_orientation, int(opts.orientation))
    raw_frame = scan.frame_shape
    valid = scan.valid
    if opts.mask is not None:
        bad = _frame_array(load_array(opts.mask, path, "mask"), raw_frame, "mask", path) != 0
        valid = ~bad if valid is None else (valid & ~bad)
    dark = None
    if opts.dark is not None:
        dark = _frame_array(load_array(opts.dark, path, "dark"), raw_frame, "dark", path)
        dark = np.ascontiguousarray(orient(dark.astype(np.float32), code))
    pre = Preprocess(
        orientation=code,
        valid=None if valid is None else np.ascontiguousarray(orient(valid, code)),
        dark=dark,
        saturation=None if opts.saturation is None else float(opts.saturation),
    )
    frame = (raw_frame[1], raw_frame[0]) if code >= 4 else raw_frame
    extent = (scan.extent_m[1], scan.extent_m[0]) if code >= 4 else scan.extent_m
    pre.window, window_record = _window(scan, pre, opts, frame)
    b = int(opts.bin)
    c = pre.window[2] if pre.window is not None else frame[0]
    if c % b:
        raise fail(
            path,
            f"a {c}-pixel window does not split into data.bin={b} blocks",
            f"set data.crop to a multiple of {b}",
        )
    pre.bin = b
    m = c // b
    (dy, dx), free_prop, field_record = _pixel(scan, opts, code, extent, c, b)
    if abs(dy - dx) > SQUARE_TOLERANCE * max(dy, dx):
        raise fail(
            path,
            f"object pixels are not square ({dy:.4g} m along y, {dx:.4g} m along x: the "
            "detector pitch or frame differs between axes)",
            "ptyframe needs square pixels: crop (data.crop) or resample the frames",
        )
    pixel = 0.5 * (dy + dx)
    pos, shape, shift, keep = _positions(scan, pixel, m, c, b)
    _check(scan, pre, opts, pixel, b, pos)
    geometry = ScanGeometry(
        positions_px=pos,
        window=(m, m),
        object_shape=shape,
        energy_ev=HC_EV_M / scan.wavelength_m,
        pixel_size_m=pixel,
        free_prop_m=free_prop,
        theta_rad=scan.theta_rad,
    )
    conventions = {
        **scan.conventions,
        **pre.describe(),
        **window_record,
        **field_record,
        "object_pixel_m": pixel,
        "wavelength_m": scan.wavelength_m,
        "origin_shift_px": shift.tolist(),
    }
    same_frame = code == 0 and pre.window is None and b == 1 and not shift.any()
    kept = (keep and pre.identity) or (scan.positions_px is None and same_frame)
    ds = PtychoDataset(
        geometry,
        path=path,
        quantity=scan.quantity,
        has_truth=scan.has_truth and kept,
        data_key=scan.data_key,
        layout=scan.layout,
        pipeline=None if pre.identity else pre,
        conventions=conventions,
    )
    ds._shape = (scan.shape[0], scan.shape[1], m, m)
    return ds


def _check(
    scan: ScanFile, pre: Preprocess, opts: DetectorOptions, pixel: float, b: int, pos: np.ndarray
) -> None:
    """Scan every value (``check_values``), then test the field (``check_field``)."""
    import h5py

    if opts.check_values:
        with h5py.File(scan.path, "r") as f:
            scan_values(f[scan.data_key], scan.path, f"/{scan.data_key}")
    if opts.check_field:
        _check_field(scan, pre, opts.field, pixel, b, pos)


def _check_field(
    scan: ScanFile, pre: Preprocess, field: str, pixel: float, b: int, pos: np.ndarray
) -> None:
    """Raise if the frames contradict the field they are read in (``data.fieldcheck``)."""
    import h5py

    def read(idx: np.ndarray) -> np.ndarray:
        with h5py.File(scan.path, "r") as f:
            raw = _read_frames(f[scan.data_key], scan.layout, 0, idx)
        return pre(_to_intensity(np.asarray(raw), scan.quantity))

    stats = field_statistics(read, pos * pixel, int(scan.shape[1]))
    pitch = None
    if scan.detector_pitch_m is not None and not scan.object_plane:
        pitch = b * 0.5 * (scan.detector_pitch_m[0] + scan.detector_pitch_m[1])
    err = check_field(stats, field, pixel, pitch, scan.detector_distance_m, scan.path)
    if err is not None:
        raise DataValidationError(err)
