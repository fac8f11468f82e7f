"""Check a data-exchange HDF5 file before anything is computed from it.

``inspect_file(path)`` opens the file read-only and raises ``DataValidationError`` with one
message (what is wrong, where, how to fix it) for the first problem found:

* not a file, not HDF5, truncated or unreadable;
* ``/exchange/data`` missing, not 4-D ``[n_angles, n_tiles, det_y, det_x]``, empty, not square,
  too small or absurdly large, of a non-numeric or complex dtype, holding NaN/Inf, all zero,
  or a pattern with no measured pixel (negative values mark unmeasured pixels);
* ``/metadata/probe_pos_px`` missing, not ``[n_tiles, 2]``, non-finite, negative (outside the
  object), or beyond a declared ``/metadata/object_shape_px``;
* ``/metadata/energy_ev`` or ``/metadata/psize_cm`` missing, non-scalar, non-finite, not
  positive, or outside physical ranges; ``theta`` / ``free_prop_cm`` of the wrong length;
* an unknown ``quantity`` attribute.

It returns a ``FileSummary`` with the metadata it read.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ptyframe.data.geometry import ScanGeometry, object_frame
from ptyframe.errors import DataValidationError

QUANTITIES = ("intensity", "magnitude")
MAX_DETECTOR_PX = 8192
MAX_OBJECT_PX = 65536
ENERGY_RANGE_EV = (1.0, 1.0e7)
PSIZE_RANGE_CM = (1.0e-12, 1.0)
#: float64 bytes of the patterns scanned at a time (the work arrays are a few times this).
_SCAN_CHUNK_BYTES = 16 * 2**20


@dataclass(frozen=True)
class FileSummary:
    """What a valid file holds."""

    path: str
    shape: tuple[int, int, int, int]
    quantity: str
    geometry: ScanGeometry
    has_truth: bool
    n_unmeasured: int


def _fail(path: str, what: str, fix: str) -> DataValidationError:
    return DataValidationError(f"{path}: {what}. {fix}")


def _scalar(f, key: str, path: str, lo: float, hi: float, unit: str) -> float:
    """Return the required positive scalar ``f[key]`` in ``[lo, hi]`` ``unit``."""
    if key not in f:
        raise _fail(path, f"missing {key}", f"write it with h5py: f[{key!r}] = <value in {unit}>")
    arr = np.asarray(f[key][()])
    if arr.size != 1:
        raise _fail(path, f"{key} must be one number, got shape {arr.shape}", "store a scalar")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise _fail(path, f"{key} has dtype {arr.dtype}", f"store a real number in {unit}")
    val = float(arr.reshape(()))
    if not math.isfinite(val) or val <= 0:
        raise _fail(path, f"{key} = {val} is not a positive finite number", f"store it in {unit}")
    if not lo <= val <= hi:
        raise _fail(
            path,
            f"{key} = {val:g} {unit} is outside the plausible range [{lo:g}, {hi:g}]",
            f"check the unit: {key} is in {unit}",
        )
    return val


def _vector(f, key: str, path: str, length: int, what: str) -> tuple[float, ...] | None:
    if key not in f:
        return None
    arr = np.asarray(f[key][()], dtype=np.float64).reshape(-1)
    if arr.size != length:
        raise _fail(
            path,
            f"{key} has {arr.size} values but {what} is {length}",
            f"store one value per {what.split(' ')[-1]}",
        )
    if not np.all(np.isfinite(arr)):
        raise _fail(path, f"{key} holds NaN or Inf", "replace the non-finite values")
    return tuple(float(v) for v in arr)


def scan_values(ds, path: str, key: str = "/exchange/data") -> int:
    """Scan the data in chunks for NaN/Inf, all-zero data and empty patterns; count masked.

    ``ds`` is any HDF5 dataset whose last two axes are the detector frame; the leading
    axes (angles and tiles, tiles, or a raster's rows and columns) are walked in order.
    """
    lead = tuple(int(s) for s in ds.shape[:-2])
    h, w = (int(s) for s in ds.shape[-2:])
    n_frames = int(np.prod(lead))
    per_tile = h * w * 8  # scanned as float64
    step = max(1, _SCAN_CHUNK_BYTES // per_tile)
    inner = lead[-1]
    unmeasured = 0
    any_nonzero = False
    for outer in np.ndindex(*lead[:-1]):
        for t0 in range(0, inner, step):
            block = np.asarray(ds[(*outer, slice(t0, t0 + step))], dtype=np.float64)
            finite = np.isfinite(block)
            names = ("angle",) if "exchange" in key else ("scan row",)
            where = ", ".join(f"{n} {i}" for n, i in zip(names, outer, strict=False))
            where = (where + ", ") if where else ""
            if not finite.all():
                bad = np.argwhere(~finite)[0]
                raise _fail(
                    path,
                    f"{key} holds {int((~finite).sum())} NaN/Inf values (first at "
                    f"{where}tile {t0 + int(bad[0])}, pixel ({int(bad[1])}, {int(bad[2])}))",
                    "mark unmeasured pixels with a negative value instead of NaN",
                )
            neg = block < 0
            unmeasured += int(neg.sum())
            empty = neg.reshape(block.shape[0], -1).all(axis=1)
            if empty.any():
                raise _fail(
                    path,
                    f"pattern ({where}tile {t0 + int(np.argmax(empty))}) has no measured "
                    "pixel (all values negative)",
                    "drop that tile and its position, or fix its mask",
                )
            any_nonzero = any_nonzero or bool((block > 0).any())
    if not any_nonzero and n_frames:
        raise _fail(path, f"every pattern in {key} is zero", "check the file's contents")
    return unmeasured


def check_frames(ds, path: str, key: str, square: bool = True) -> None:
    """Check the frame size and dtype of the pattern dataset ``ds`` (last two axes)."""
    h, w = (int(s) for s in ds.shape[-2:])
    if square and h != w:
        raise _fail(path, f"patterns are {h}x{w}, not square", "crop the patterns to a square")
    if min(h, w) < 4:
        raise _fail(path, f"patterns of {h}x{w} pixels are too small", "use at least 4x4")
    if max(h, w) > MAX_DETECTOR_PX:
        raise _fail(path, f"patterns of {h}x{w} exceed {MAX_DETECTOR_PX} px", "bin or crop them")
    if ds.dtype.kind not in "iuf":
        raise _fail(
            path,
            f"{key} has dtype {ds.dtype}",
            "store real intensities (or magnitudes) as float or integer counts",
        )


def _check_data(f, path: str) -> tuple[tuple[int, int, int, int], str]:
    import h5py

    if "exchange/data" not in f or not isinstance(f["exchange/data"], h5py.Dataset):
        raise _fail(
            path,
            "missing dataset /exchange/data",
            "store the patterns as /exchange/data [n_angles, n_tiles, det_y, det_x]",
        )
    ds = f["exchange/data"]
    if ds.ndim != 4:
        hint = (
            "add a leading angle axis: data[None]"
            if ds.ndim == 3
            else "reshape to [n_angles, n_tiles, det_y, det_x]"
        )
        raise _fail(path, f"/exchange/data must be 4-D, got shape {ds.shape}", hint)
    n_angles, n_tiles, h, w = (int(s) for s in ds.shape)
    if n_angles == 0 or n_tiles == 0:
        raise _fail(path, f"/exchange/data is empty (shape {ds.shape})", "the scan has no patterns")
    check_frames(ds, path, "/exchange/data")
    quantity = ds.attrs.get("quantity", "intensity")
    if isinstance(quantity, bytes):
        quantity = quantity.decode()
    if quantity not in QUANTITIES:
        raise _fail(
            path,
            f"/exchange/data attribute quantity={quantity!r} is unknown",
            f"use one of {QUANTITIES}",
        )
    return (n_angles, n_tiles, h, w), str(quantity)


def _check_positions(f, path: str, n_tiles: int) -> np.ndarray:
    if "metadata/probe_pos_px" not in f:
        raise _fail(
            path,
            "missing /metadata/probe_pos_px",
            "store the (y, x) top-left probe corners in pixels, shape [n_tiles, 2]",
        )
    pos = np.asarray(f["metadata/probe_pos_px"][()])
    if not np.issubdtype(pos.dtype, np.number) or np.iscomplexobj(pos):
        raise _fail(path, f"/metadata/probe_pos_px has dtype {pos.dtype}", "store real numbers")
    pos = pos.astype(np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise _fail(
            path,
            f"/metadata/probe_pos_px must be [n_tiles, 2], got {pos.shape}",
            "store one (y, x) row per tile",
        )
    if pos.shape[0] != n_tiles:
        raise _fail(
            path,
            f"/metadata/probe_pos_px has {pos.shape[0]} rows but "
            f"/exchange/data has {n_tiles} tiles",
            "store one position per tile",
        )
    if not np.all(np.isfinite(pos)):
        raise _fail(path, "/metadata/probe_pos_px holds NaN or Inf", "fix the positions")
    if (pos < 0).any():
        i = int(np.argwhere(pos < 0)[0, 0])
        raise _fail(
            path,
            f"probe position {i} ({pos[i, 0]:g}, {pos[i, 1]:g}) is outside the object (negative)",
            "shift all positions so the smallest is >= 0",
        )
    return pos


def _object_shape(f, path: str, pos: np.ndarray, window: tuple[int, int]) -> tuple[int, int]:
    declared: tuple[int, int] | None = None
    if "metadata/object_shape_px" in f:
        shape = tuple(int(v) for v in np.asarray(f["metadata/object_shape_px"][()]).ravel())
        if len(shape) != 2 or min(shape) < 1:
            raise _fail(
                path,
                f"/metadata/object_shape_px = {shape} is not (ny, nx)",
                "store two positive integers or remove it",
            )
        declared = (shape[0], shape[1])
    frame = object_frame(pos, window)
    if declared is not None:
        if frame[0] > declared[0] or frame[1] > declared[1]:
            raise _fail(
                path,
                f"positions need an object of at least {frame} but "
                f"/metadata/object_shape_px is {declared}",
                "enlarge the object or fix positions",
            )
        frame = declared
    if max(frame) > MAX_OBJECT_PX:
        raise _fail(
            path,
            f"the positions span an object of {frame} pixels (> {MAX_OBJECT_PX})",
            "check the unit of probe_pos_px: it is pixels, not metres",
        )
    return frame


def inspect_open(f, path: str, scan: bool = True) -> FileSummary:
    """Validate the open data-exchange file ``f`` (named ``path``) and return what it holds."""
    shape, quantity = _check_data(f, path)
    n_angles, n_tiles, h, w = shape
    pos = _check_positions(f, path, n_tiles)
    frame = _object_shape(f, path, pos, (h, w))
    energy = _scalar(f, "metadata/energy_ev", path, *ENERGY_RANGE_EV, "eV")
    psize = _scalar(f, "metadata/psize_cm", path, *PSIZE_RANGE_CM, "cm")
    theta = _vector(f, "metadata/theta", path, n_angles, "the number of angles")
    prop = None
    if "metadata/free_prop_cm" in f:
        arr = np.asarray(f["metadata/free_prop_cm"][()], dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(arr)):
            raise _fail(path, "/metadata/free_prop_cm holds NaN or Inf", "fix the distances")
        prop = tuple(float(v) for v in arr)
    has_truth = "truth/object" in f
    unmeasured = scan_values(f["exchange/data"], path) if scan else 0
    geometry = ScanGeometry(
        positions_px=pos,
        window=(h, w),
        object_shape=frame,
        energy_ev=energy,
        pixel_size_m=psize * 1e-2,
        free_prop_m=tuple(p * 1e-2 for p in prop) if prop else (),
        theta_rad=theta if theta is not None else tuple(0.0 for _ in range(n_angles)),
    )
    return FileSummary(path, shape, quantity, geometry, has_truth, unmeasured)


def inspect_file(path: str | os.PathLike, scan_values: bool = True) -> FileSummary:
    """Validate the data-exchange file at ``path`` and return what it holds."""
    from ptyframe.data.reader import open_h5

    path = os.fspath(path)
    with open_h5(path) as f:
        try:
            return inspect_open(f, path, scan_values)
        except (RuntimeError, OSError) as exc:  # h5py on a damaged B-tree or heap
            raise _fail(
                path,
                f"is damaged ({str(exc).splitlines()[0]})",
                "the file is truncated or corrupt; re-export it",
            ) from None
