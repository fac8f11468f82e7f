"""Choose and run a file reader: the ``reader`` component kind.

A reader turns one file layout (data-exchange, CXI, NXcxi_ptycho, PtyLab, ...) into a
``ScanFile``: where the patterns are, the detector geometry and the beam positions, in the
file's own units and conventions, plus a record of the conventions it applied. The dataset
source (``ptyframe.data.sources``) then applies the detector preprocessing and computes the
object-pixel geometry (``ptyframe.data.scanfile``).

Choosing: ``data.reader=auto`` (default) opens the file and asks every registered reader
whether it recognises the contents (``Reader.sniff``, which looks at HDF5 paths and
attributes, never at the file extension); the most specific match wins (``priority``).
``data.reader=NAME`` forces one. A third-party reader is one entry point whose
``ptyframe_register`` hook calls ``registry.add_reader(MyConfig, MyReader)`` (the name is
``MyConfig.name``'s default); ``MyReader(config)`` has ``name``, ``priority``,
``sniff(h5file)`` and ``read(h5file, path) -> ScanFile``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ptyframe.errors import DataValidationError
from ptyframe.registry import BuildContext, Registry

#: h c in J m (exact, SI 2019), for wavelength_m = HC_J_M / energy_j.
HC_J_M = 1.986445857e-25
#: One electronvolt in joules (exact).
EV_J = 1.602176634e-19


@dataclass
class ScanFile:
    """What a reader found, before preprocessing (raw detector frames).

    ``data_key`` is the HDF5 path of the patterns; ``layout`` says how to index it:
    ``"angles_tiles"`` ``[n_angles, n_tiles, H, W]``, ``"tiles"`` ``[n_tiles, H, W]`` or
    ``"raster"`` ``[n_y, n_x, H, W]`` (tiles in row-major scan order).
    ``extent_m`` ``(ey, ex)`` is the real-space extent of a full raw frame,
    ``wavelength * distance / pitch`` per axis, so the object pixel of a window of ``C``
    raw detector pixels is ``extent / C`` (``dx = lambda z / (M p)``).
    ``centres_m`` ``[n_tiles, 2]`` are the (y, x) beam positions on the object in metres,
    along the object-frame axes, with an arbitrary origin. ``positions_px`` may hold the
    exact stored top-left pixel positions (data-exchange), used unchanged when the window
    is not changed by preprocessing.
    """

    path: str
    reader: str
    data_key: str
    layout: str
    shape: tuple[int, int, int, int]  # (n_angles, n_tiles, H, W)
    quantity: str
    wavelength_m: float
    extent_m: tuple[float, float]
    centres_m: np.ndarray
    positions_px: np.ndarray | None = None
    object_shape: tuple[int, int] | None = None
    #: bool ``[H, W]``, True where the detector measured (the file's own mask).
    valid: np.ndarray | None = None
    #: Frame transform the file asks for (ptypy code 0-7, applied before anything else).
    file_orientation: int = 0
    free_prop_m: tuple[float, ...] = ()
    theta_rad: tuple[float, ...] = (0.0,)
    has_truth: bool = False
    #: Whether ``centres_m`` has a meaningful origin (data-exchange) or a stage's (others).
    arbitrary_origin: bool = True
    #: The detector pitch ``(p_y, p_x)`` (m) and distance (m) as stored, for the near-field
    #: pixel rule (``ptyframe.data.conebeam``); None where the layout does not say.
    detector_pitch_m: tuple[float, float] | None = None
    detector_distance_m: float | None = None
    #: True when the file stores object-plane quantities (data-exchange: the object pixel and
    #: the effective distance), so no magnification applies.
    object_plane: bool = False
    conventions: dict[str, Any] = field(default_factory=dict)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return (self.shape[2], self.shape[3])


class Reader(Protocol):
    """What a ``reader`` component builds."""

    name: str
    #: Higher wins when several readers recognise a file (a specialisation of CXI > CXI).
    priority: int

    def sniff(self, f: Any) -> bool:
        """Return True if the open ``h5py.File`` looks like this reader's layout."""

    def read(self, f: Any, path: str) -> ScanFile:
        """Return the scan in ``f``; raise ``DataValidationError`` naming problem and fix."""


def fail(path: str, what: str, fix: str) -> DataValidationError:
    """Return the one-line error every reader raises: ``path: what. fix``."""
    return DataValidationError(f"{path}: {what}. {fix}")


def open_h5(path: str | os.PathLike) -> Any:
    """Open ``path`` read-only as HDF5, or raise a one-line error saying why not."""
    import h5py

    path = os.fspath(path)
    if not os.path.exists(path):
        raise fail(path, "no such file", "check the path (data.path=...)")
    if not os.path.isfile(path):
        raise fail(path, "is not a file", "point data.path at an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise fail(
            path,
            f"cannot be read as HDF5 ({exc})",
            "the file is truncated, corrupt or not HDF5; re-export it",
        ) from None


def readers(registry: Registry, context: BuildContext | None = None) -> list[Reader]:
    """Build every registered reader, most specific first."""
    ctx = context or BuildContext(registry=registry)
    built = [registry.build("reader", name, ctx) for name in registry.names("reader")]
    return sorted(built, key=lambda r: (-int(getattr(r, "priority", 0)), r.name))


def choose_reader(
    f: Any, path: str, registry: Registry, name: str = "auto", context: BuildContext | None = None
) -> Reader:
    """Return the reader ``name`` forces, or the most specific one that recognises ``f``."""
    if name != "auto":
        ctx = context or BuildContext(registry=registry)
        return registry.build("reader", name, ctx)
    candidates = readers(registry, context)
    for reader in candidates:
        try:
            if reader.sniff(f):
                return reader
        except Exception:  # a reader that cannot tell is no match
            continue
    names = ", ".join(r.name for r in candidates) or "(none registered)"
    try:
        top = ", ".join(sorted(f.keys())[:8]) or "(empty file)"
    except (RuntimeError, OSError, KeyError) as exc:  # a damaged group table
        top = f"unreadable: {exc}"
    raise fail(
        path,
        f"no reader recognises this file (top-level entries: {top}); "
        "missing dataset /exchange/data (data-exchange), /entry_1 (CXI, NXcxi_ptycho) and "
        "/ptychogram (PtyLab)",
        f"force a reader with data.reader=NAME (installed: {names}) or convert the file",
    )


def read_scan(
    path: str | os.PathLike,
    registry: Registry,
    name: str = "auto",
    context: BuildContext | None = None,
) -> ScanFile:
    """Open ``path``, choose its reader and return what it read."""
    path = os.fspath(path)
    with open_h5(path) as f:
        reader = choose_reader(f, path, registry, name, context)
        try:
            scan = reader.read(f, path)
        except DataValidationError:
            raise
        except (KeyError, OSError, RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise fail(
                path,
                f"the {reader.name} reader could not read it ({type(exc).__name__}: {exc})",
                "the file is damaged or not in this layout; check data.reader",
            ) from None
    scan.conventions.setdefault("reader", reader.name)
    return scan


# ---------------------------------------------------------------------- helpers for readers
def scalar(
    f: Any,
    key: str,
    path: str,
    unit: str,
    lo: float,
    hi: float,
    hint: str,
) -> float:
    """Read the positive finite scalar ``key`` (stored in ``unit``) within ``[lo, hi]``."""
    if key not in f:
        raise fail(path, f"missing {key}", f"write it with h5py: f[{key!r}] = <value in {unit}>")
    arr = np.asarray(f[key][()])
    if arr.size != 1:
        raise fail(path, f"{key} must be one number, got shape {arr.shape}", "store a scalar")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise fail(path, f"{key} has dtype {arr.dtype}", f"store a real number in {unit}")
    val = float(arr.reshape(()))
    if not np.isfinite(val) or val <= 0:
        raise fail(path, f"{key} = {val} is not a positive finite number", f"store it in {unit}")
    if not lo <= val <= hi:
        raise fail(
            path,
            f"{key} = {val:g} is outside the plausible range [{lo:g}, {hi:g}] {unit}",
            hint,
        )
    return val


#: Factors to SI of length and energy units as NeXus ``units`` attributes spell them.
LENGTH_UNITS = {
    "m": 1.0,
    "mm": 1e-3,
    "um": 1e-6,
    "µm": 1e-6,
    "micron": 1e-6,
    "microns": 1e-6,
    "nm": 1e-9,
    "pm": 1e-12,
    "cm": 1e-2,
    "angstrom": 1e-10,
    "a": 1e-10,
}
ENERGY_UNITS = {"j": 1.0, "ev": EV_J, "kev": 1e3 * EV_J}


def unit_factor(ds: Any, table: dict[str, float], default: str, path: str, key: str) -> float:
    """Return the SI factor of the ``units`` attribute of ``ds`` (``default`` if absent)."""
    raw = ds.attrs.get("units", default)
    if isinstance(raw, bytes):
        raw = raw.decode()
    if isinstance(raw, np.ndarray):
        raw = str(raw.ravel()[0])
    unit = str(raw).strip()
    factor = table.get(unit.lower())
    if factor is None:
        raise fail(
            path,
            f"{key} has units {unit!r}, which ptyframe does not know",
            f"use one of {', '.join(sorted(table))}",
        )
    return float(factor)
