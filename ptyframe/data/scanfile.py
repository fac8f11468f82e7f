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

from ptyframe.data.dataset import PtychoDataset, _read_frames, _to_intensity
from ptyframe.data.geometry import HC_EV_M, ScanGeometry, object_frame
from ptyframe.data.preprocess import Preprocess, compose, orient, pattern_centre
from ptyframe.data.reader import ScanFile, fail
from ptyframe.data.validate import MAX_OBJECT_PX, scan_values

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
    dy, dx = extent[0] / c, extent[1] / c
    if abs(dy - dx) > SQUARE_TOLERANCE * max(dy, dx):
        raise fail(
            path,
            f"object pixels are not square ({dy:.4g} m along y, {dx:.4g} m along x: the "
            "detector pitch or frame differs between axes)",
            "ptyframe needs square pixels: crop (data.crop) or resample the frames",
        )
    pixel = 0.5 * (dy + dx)
    pos, shape, shift, keep = _positions(scan, pixel, m, c, b)
    if opts.check_values:
        import h5py

        with h5py.File(path, "r") as f:
            scan_values(f[scan.data_key], path, f"/{scan.data_key}")
    geometry = ScanGeometry(
        positions_px=pos,
        window=(m, m),
        object_shape=shape,
        energy_ev=HC_EV_M / scan.wavelength_m,
        pixel_size_m=pixel,
        free_prop_m=scan.free_prop_m,
        theta_rad=scan.theta_rad,
    )
    conventions = {
        **scan.conventions,
        **pre.describe(),
        **window_record,
        "object_pixel_m": pixel,
        "wavelength_m": scan.wavelength_m,
        "origin_shift_px": shift.tolist(),
    }
    ds = PtychoDataset(
        geometry,
        path=path,
        quantity=scan.quantity,
        has_truth=scan.has_truth and keep and pre.identity,
        data_key=scan.data_key,
        layout=scan.layout,
        pipeline=None if pre.identity else pre,
        conventions=conventions,
    )
    ds._shape = (scan.shape[0], scan.shape[1], m, m)
    return ds
