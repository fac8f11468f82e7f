"""Read CXI 1.6 files (ptypy, PyNX, cdtools) and NeXus NXcxi_ptycho files (Diamond).

CXI layout read here (all SI units)::

    /entry_1/data_1/data  ->  /entry_1/instrument_1/detector_1/data   [n, H, W]
    /entry_1/instrument_1/detector_1/distance           m
    /entry_1/instrument_1/detector_1/x_pixel_size       m  (pitch along the fast axis j)
    /entry_1/instrument_1/detector_1/y_pixel_size       m  (pitch along the slow axis i)
    /entry_1/instrument_1/detector_1/basis_vectors      [2, 3] or [3, 2], m (optional)
    /entry_1/instrument_1/detector_1/mask               [H, W] uint, 0 = good (optional)
    /entry_1/instrument_1/source_1/energy               J   (or .../wavelength in m)
    /entry_1/sample_1/geometry_1/translation            [n, 3] m, the SAMPLE's translation
                                                        (also linked at data_1/translation)

Geometry (as cdtools reads its own files): the detector basis ``B`` (columns: the lab vectors
of one pixel step along i and j; default ``[(0, -p_y, 0), (-p_x, 0, 0)]``, i.e. i along -y
and j along -x) gives the object-plane basis ``R = lambda z pinv(B diag(H, W))^T`` (the object
pixel ``dx = lambda z / (M p)``); the probe moves by ``-translation`` relative to the sample,
so the probe positions in object pixels are ``pinv(R) (-t)`` (the z component dropped).
A CXI mask marks bad pixels with any bit set except 0x1000 ("signal above background").

NXcxi_ptycho (NeXus application definition, CXI compatible) stores the same detector group
with ``units`` attributes on each length, the photon energy in
``/entry_1/instrument_1/beam_1/energy`` (``source_1/energy`` is the storage ring's), the
translations in ``detector_1/translation`` (linked into ``data_1`` and ``sample_1/geometry_1``)
and may store a raster scan as ``[n_y, n_x, H, W]``; the basis is the CXI default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ptyframe.data.reader import (
    ENERGY_UNITS,
    HC_J_M,
    LENGTH_UNITS,
    ScanFile,
    fail,
    scalar,
    unit_factor,
)
from ptyframe.data.validate import MAX_OBJECT_PX, check_frames

DET = "entry_1/instrument_1/detector_1"
SRC = "entry_1/instrument_1/source_1"
WAVELENGTH_RANGE_M = (1e-13, 2e-6)
ENERGY_RANGE_J = (HC_J_M / WAVELENGTH_RANGE_M[1], HC_J_M / WAVELENGTH_RANGE_M[0])
DISTANCE_RANGE_M = (1e-4, 1e3)
PITCH_RANGE_M = (1e-7, 1e-2)
TRANSLATION_KEYS = (
    "entry_1/sample_1/geometry_1/translation",
    "entry_1/data_1/translation",
    f"{DET}/translation",
)


@dataclass
class CxiReaderConfig:
    """CXI 1.6 as ptypy, PyNX and cdtools write it (SI units, sample translations)."""

    name: str = "cxi"


@dataclass
class NxcxiReaderConfig:
    """NeXus NXcxi_ptycho (CXI-compatible application definition; lengths carry units)."""

    name: str = "nxcxi"


def _text(f: Any, key: str) -> str:
    if key not in f:
        return ""
    raw = f[key][()]
    if isinstance(raw, np.ndarray):
        raw = raw.ravel()[0] if raw.size else b""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class CxiReader:
    """CXI 1.6: SI units throughout, energy in joules."""

    name = "cxi"
    priority = 10
    units = False  # NXcxi: lengths and energy carry ``units`` attributes

    def __init__(self, config: CxiReaderConfig | None = None) -> None:
        self.config = config

    def sniff(self, f: Any) -> bool:
        return "entry_1" in f and (
            "cxi_version" in f or DET in f or "entry_1/data_1" in f or "entry_1/image_1" in f
        )

    # ------------------------------------------------------------------ pieces
    def _length(self, f: Any, key: str, path: str, lo: float, hi: float, what: str) -> float:
        factor = unit_factor(f[key], LENGTH_UNITS, "m", path, key) if key in f and self.units else 1
        hint = f"{what}: store it in metres" + (
            " (or give a units attribute)" if self.units else ""
        )
        val = scalar(f, key, path, "m", lo / factor, hi / factor, _unit_hint(f, key, hint))
        return val * factor

    def wavelength(self, f: Any, path: str) -> tuple[float, str]:
        """Return the wavelength in metres and where it came from."""
        if f"{SRC}/wavelength" in f:
            lam = scalar(
                f, f"{SRC}/wavelength", path, "m", *WAVELENGTH_RANGE_M, "CXI stores metres"
            )
            return lam, f"/{SRC}/wavelength [m]"
        key = f"{SRC}/energy"
        if key in f:
            raw = float(np.asarray(f[key][()]).reshape(-1)[0])
            hint = (
                "CXI stores the photon energy in joules: write energy_ev * 1.602176634e-19"
                if raw > 1e-3
                else "CXI stores the photon energy in joules"
            )
            energy = scalar(f, key, path, "J", *ENERGY_RANGE_J, hint)
            return HC_J_M / energy, f"/{key} [J] -> wavelength = h c / E"
        raise fail(
            path,
            f"missing /{SRC}/energy and /{SRC}/wavelength",
            f"store the photon energy in joules at /{SRC}/energy",
        )

    def data_key(self, f: Any, path: str) -> tuple[str, str]:
        """Return the HDF5 path of the patterns and their layout."""
        for key in ("entry_1/data_1/data", f"{DET}/data"):
            if key in f and hasattr(f[key], "shape"):
                ds = f[key]
                if ds.ndim == 3:
                    return ds.name.lstrip("/"), "tiles"
                if ds.ndim == 4 and self.units:
                    return ds.name.lstrip("/"), "raster"
                raise fail(
                    path,
                    f"/{key} must be [n_frames, H, W], got shape {ds.shape}",
                    "store one detector frame per scan point along the first axis",
                )
        raise fail(
            path,
            f"missing dataset /{DET}/data (and its link /entry_1/data_1/data)",
            f"store the frames [n, H, W] at /{DET}/data",
        )

    def basis(self, f: Any, path: str) -> tuple[np.ndarray, str]:
        """Return the detector basis ``[3, 2]`` (columns: pixel steps along i, j) in metres."""
        key = f"{DET}/basis_vectors"
        if key in f and not self.units:
            b = np.asarray(f[key][()], dtype=np.float64)
            if b.shape == (2, 3):
                b = b.T
            if b.shape != (3, 2) or not np.all(np.isfinite(b)):
                raise fail(
                    path,
                    f"/{key} has shape {b.shape} or non-finite values",
                    "store two 3-vectors (slow axis i, fast axis j) in metres, shape [2, 3]",
                )
            for col, what in ((b[:, 0], "i"), (b[:, 1], "j")):
                n = float(np.linalg.norm(col))
                if not PITCH_RANGE_M[0] <= n <= PITCH_RANGE_M[1]:
                    raise fail(
                        path,
                        f"/{key}: the {what} pixel step is {n:g} m, outside "
                        f"[{PITCH_RANGE_M[0]:g}, {PITCH_RANGE_M[1]:g}] m",
                        "CXI stores the basis vectors in metres",
                    )
            return b, f"/{key}"
        px = py = None
        if f"{DET}/x_pixel_size" in f:
            px = self._length(f, f"{DET}/x_pixel_size", path, *PITCH_RANGE_M, "detector pitch")
        if f"{DET}/y_pixel_size" in f:
            py = self._length(f, f"{DET}/y_pixel_size", path, *PITCH_RANGE_M, "detector pitch")
        if px is None and py is None:
            raise fail(
                path,
                f"missing detector geometry: no /{DET}/x_pixel_size, y_pixel_size or basis_vectors",
                f"store the detector pitch in metres at /{DET}/x_pixel_size and y_pixel_size",
            )
        px = px if px is not None else py
        py = py if py is not None else px
        b = np.array([[0.0, -py, 0.0], [-px, 0.0, 0.0]]).T  # type: ignore[operator]
        return b, "default (i along -y, j along -x) with x/y_pixel_size"

    def translations(self, f: Any, path: str, n: int) -> tuple[np.ndarray, str]:
        """Return the sample translations ``[n, 3]`` in metres and their HDF5 path."""
        for key in TRANSLATION_KEYS:
            if key in f:
                t = np.asarray(f[key][()])
                if not np.issubdtype(t.dtype, np.number) or np.iscomplexobj(t):
                    raise fail(path, f"/{key} has dtype {t.dtype}", "store real numbers in metres")
                t = t.astype(np.float64)
                if self.units:
                    t = t * unit_factor(f[key], LENGTH_UNITS, "m", path, key)
                if t.ndim != 2 or t.shape[1] not in (2, 3):
                    raise fail(
                        path,
                        f"/{key} must be [n_frames, 3] (x, y, z), got shape {t.shape}",
                        "store one (x, y, z) row per frame, in metres",
                    )
                if t.shape[0] != n:
                    raise fail(
                        path,
                        f"/{key} has {t.shape[0]} rows but the data has {n} frames",
                        "store one translation per frame",
                    )
                if not np.all(np.isfinite(t)):
                    raise fail(path, f"/{key} holds NaN or Inf", "fix the translations")
                if t.shape[1] == 2:
                    t = np.c_[t, np.zeros(n)]
                return t, f"/{key}"
        raise fail(
            path,
            "missing scan positions: no /entry_1/sample_1/geometry_1/translation",
            "store the sample translation per frame, [n, 3] (x, y, z) in metres",
        )

    def mask(self, f: Any, path: str, frame: tuple[int, int]) -> np.ndarray | None:
        """Return the valid-pixel map from ``detector_1/mask`` (bool ``[H, W]``), if any."""
        key = f"{DET}/mask"
        if key not in f:
            return None
        m = np.asarray(f[key][()])
        if m.shape != frame:
            raise fail(
                path,
                f"/{key} is {'x'.join(map(str, m.shape))} but the frames are {frame[0]}x{frame[1]}",
                "store one mask value per detector pixel",
            )
        m = m.astype(np.uint32)
        return (m == 0) | (m == 0x1000)

    # ------------------------------------------------------------------ read
    def read(self, f: Any, path: str) -> ScanFile:
        key, layout = self.data_key(f, path)
        ds = f[key]
        check_frames(ds, path, f"/{key}", square=False)
        n = int(np.prod(ds.shape[:-2]))
        if n == 0:
            raise fail(path, f"/{key} is empty (shape {ds.shape})", "the scan has no patterns")
        h, w = (int(s) for s in ds.shape[-2:])
        lam, lam_from = self.wavelength(f, path)
        dist = self._length(f, f"{DET}/distance", path, *DISTANCE_RANGE_M, "detector distance")
        basis, basis_from = self.basis(f, path)
        trans, trans_from = self.translations(f, path, n)
        # object-plane basis R = lambda z pinv(B diag(H, W))^T; probe moves by -translation
        real = np.linalg.pinv(basis * np.array([h, w])).T * lam * dist
        pix = (np.linalg.pinv(real) @ (-trans.T)).T  # [n, 2] (i, j) object pixels
        step = np.linalg.norm(real, axis=0)  # (dy, dx) of the raw frame
        centres = pix * step
        pitch = float(np.linalg.norm(basis, axis=0).max())
        _check_span(path, pix, (h, w), step, trans_from, pitch)
        return ScanFile(
            path=path,
            reader=self.name,
            data_key=key,
            layout=layout,
            shape=(1, n, h, w),
            quantity="intensity",
            wavelength_m=lam,
            extent_m=(float(step[0]) * h, float(step[1]) * w),
            centres_m=centres,
            valid=self.mask(f, path, (h, w)),
            detector_pitch_m=(
                float(np.linalg.norm(basis[:, 0])),
                float(np.linalg.norm(basis[:, 1])),
            ),
            detector_distance_m=dist,
            has_truth="truth/object" in f,
            conventions={
                "data": f"/{key} [{layout}]",
                "wavelength": lam_from,
                "distance": f"/{DET}/distance [m]" + (" (units attribute)" if self.units else ""),
                "detector_basis": basis_from,
                "detector_basis_m": basis.T.tolist(),
                "positions": f"{trans_from} [m] is the sample translation; probe position = "
                "pinv(R) (-translation), origin shifted by whole pixels",
                "object_pixel": "dx = wavelength * distance / (M * pitch)",
            },
        )


class NxcxiReader(CxiReader):
    """NXcxi_ptycho: ``units`` attributes on lengths, photon energy in ``beam_1``."""

    name = "nxcxi"
    priority = 20
    units = True

    def sniff(self, f: Any) -> bool:
        definition = _text(f, "entry_1/definition").strip()
        return definition in ("NXcxi_ptycho", "NXptycho") or "entry_1/instrument_1/beam_1" in f

    def wavelength(self, f: Any, path: str) -> tuple[float, str]:
        for key in (
            "entry_1/instrument_1/beam_1/incident_beam_energy",
            "entry_1/instrument_1/beam_1/energy",
        ):
            if key in f:
                factor = unit_factor(f[key], ENERGY_UNITS, "J", path, key)
                lo, hi = (v / factor for v in ENERGY_RANGE_J)
                energy = scalar(
                    f, key, path, "J", lo, hi, "check the units attribute of the energy"
                )
                return HC_J_M / (energy * factor), f"/{key} [{_units(f[key], 'J')}]"
        raise fail(
            path,
            "missing /entry_1/instrument_1/beam_1/energy (the photon energy)",
            "store it with a units attribute (eV, keV or J); source_1/energy is the ring's",
        )


def _units(ds: Any, default: str) -> str:
    raw = ds.attrs.get("units", default)
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _unit_hint(f: Any, key: str, hint: str) -> str:
    if key in f:
        raw = float(np.asarray(f[key][()]).reshape(-1)[0])
        if raw > 1.0:
            return f"{hint}; {raw:g} looks like millimetres or micrometres"
    return hint


def _check_span(
    path: str,
    pix: np.ndarray,
    frame: tuple[int, int],
    step: np.ndarray,
    where: str,
    largest_pixel_m: float = 0.0,
) -> None:
    """Refuse translations whose span makes no sense in object pixels (wrong unit).

    ``step`` is the far-field object pixel; ``largest_pixel_m`` the largest one the file can
    mean (the detector pitch: a near-field image without magnification), against which a
    span too large for any reading is refused (``scanfile`` checks the final object frame).
    """
    span_px = np.ptp(pix, axis=0) if len(pix) > 1 else np.zeros(2)
    span_m = span_px * step
    widest = float(span_m.max()) / max(float(step.max()), largest_pixel_m)
    if widest + max(frame) > MAX_OBJECT_PX:
        raise fail(
            path,
            f"{where} spans {span_m.max():.3g} m = {span_px.max():.3g} object pixels of "
            f"{step.max():.3g} m (> {MAX_OBJECT_PX})",
            "the values look like pixels, micrometres or nanometres; CXI stores metres",
        )
    if len(pix) > 1 and float(span_px.max()) < 0.5:
        raise fail(
            path,
            f"{where} spans only {span_m.max():.3g} m, less than one object pixel "
            f"({step.max():.3g} m)",
            "the translations look scaled twice; CXI stores metres",
        )
