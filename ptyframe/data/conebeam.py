"""Turn a detector's geometry into the object-plane geometry of a near-field scan.

Far field (the readers' default): an object pixel is ``dx = lambda z / (C p)`` for a window of
``C`` detector pixels of pitch ``p`` at distance ``z`` (``ptyframe.data.scanfile``).

Near field records a magnified real-space image, so the pixel rule changes:

* plane wave: the object pixel is the detector pixel, ``dx = b p`` (``b`` the binning), and
  the hologram forms over the detector distance ``z2``;
* cone beam (the Fresnel scaling theorem; Paganin, *Coherent X-Ray Optics*, Oxford 2006):
  a beam diverging from a focus ``z1`` upstream of the sample projects the sample onto a
  detector ``z2`` downstream magnified by ``M = (z1 + z2) / z1``, and the hologram equals the
  plane-wave hologram of the unmagnified sample at the effective distance
  ``z_eff = z2 / M = z1 z2 / (z1 + z2)``, magnified by ``M``. The object pixel is
  ``dx = b p / M``; the beam's curvature is absorbed by the scaling (the probe of the scaled
  frame has none, ``ptyframe.simulation.optics.scaled_field``).

Cropping does not change the near-field pixel (a crop of an image is an image); binning by ``b``
multiplies it by ``b``. Beam positions come from the readers in metres on the sample and are
the same in both regimes. Data-exchange files store the object-plane pixel and the
(effective) distance already (Adorym's layout), so they take no ``z1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ptyframe.errors import DataValidationError

#: Values of ``data.field``: decided by the physics (``auto``), or forced.
FIELDS = ("auto", "far", "near")


@dataclass(frozen=True)
class NearFieldGeometry:
    """A near-field scan's distances: ``z2`` (detector) and ``z1`` (focus, or None)."""

    detector_distance_m: float
    focus_to_sample_m: float | None = None

    def __post_init__(self) -> None:
        z1, z2 = self.focus_to_sample_m, self.detector_distance_m
        if not (math.isfinite(z2) and z2 > 0):
            raise DataValidationError(f"the detector distance {z2} m must be positive")
        if z1 is not None and not (math.isfinite(z1) and z1 > 0):
            raise DataValidationError(
                f"data.focus_to_sample_m = {z1} must be a positive distance in metres (the "
                "sample's distance downstream of the focus), or null for a plane wave"
            )

    @property
    def cone_beam(self) -> bool:
        return self.focus_to_sample_m is not None

    @property
    def magnification(self) -> float:
        """Return ``M = (z1 + z2) / z1`` (1 for a plane wave)."""
        z1 = self.focus_to_sample_m
        return 1.0 if z1 is None else (z1 + self.detector_distance_m) / z1

    @property
    def effective_distance_m(self) -> float:
        """Return ``z2 / M`` (``z2`` for a plane wave)."""
        return self.detector_distance_m / self.magnification

    def object_pixel_m(self, detector_pitch_m: float, binning: int = 1) -> float:
        """Return ``b p / M``."""
        return int(binning) * detector_pitch_m / self.magnification

    def conventions(self, detector_pitch_m: float, binning: int = 1) -> dict[str, Any]:
        """Return what was assumed, for ``recon.h5``'s data conventions."""
        out: dict[str, Any] = {
            "field": "near (cone beam, Fresnel scaling theorem)"
            if self.cone_beam
            else "near (plane wave)",
            "detector_distance_m": self.detector_distance_m,
            "effective_distance_m": self.effective_distance_m,
            "magnification": self.magnification,
            "object_pixel": "dx = binning * detector pitch / magnification",
            "object_pixel_m": self.object_pixel_m(detector_pitch_m, binning),
        }
        if self.cone_beam:
            out["focus_to_sample_m"] = self.focus_to_sample_m
        return out


def far_field_pixel_m(
    wavelength_m: float, distance_m: float, window_px: int, pitch_m: float
) -> float:
    """Return the far-field object pixel ``lambda z / (C p)`` (for messages)."""
    return wavelength_m * distance_m / (window_px * pitch_m)


@dataclass(frozen=True)
class NearFieldPixels:
    """What the near-field rule gives a scan: pixel per axis, distance(s), the record."""

    pixel_m: tuple[float, float]
    free_prop_m: tuple[float, ...]
    conventions: dict[str, Any]


def near_field_pixels(
    scan: Any, transposed: bool, binning: int, focus_to_sample_m: float | None
) -> NearFieldPixels:
    """Return the near-field pixel (per axis, after the frame's orientation) and distance.

    ``scan`` is a ``ptyframe.data.reader.ScanFile``; ``transposed`` says the orientation swaps
    the frame's axes. Raises ``DataValidationError`` naming the fix when the file cannot say.
    """
    from ptyframe.data.reader import fail

    if scan.object_plane:  # data-exchange: object pixel and effective distance as stored
        if focus_to_sample_m is not None:
            raise fail(
                scan.path,
                "data.focus_to_sample_m is set but this data-exchange file stores the "
                "object-plane pixel (/metadata/psize_cm) and the propagation distance "
                "(/metadata/free_prop_cm), i.e. the Fresnel scaling is already applied",
                "drop data.focus_to_sample_m, or store the detector geometry in a CXI file",
            )
        py, px = scan.detector_pitch_m
        pixel = (binning * py, binning * px)
        record = {
            "field": "near (data-exchange: object-plane pixel and distance as stored)",
            "object_pixel": "dx = binning * /metadata/psize_cm",
        }
        return NearFieldPixels(pixel, tuple(scan.free_prop_m), record)
    if scan.detector_pitch_m is None or scan.detector_distance_m is None:
        raise fail(
            scan.path,
            f"the {scan.reader} reader found no detector pitch and distance, which the "
            "near-field pixel rule needs",
            "store them in the file (CXI: detector_1/x_pixel_size, y_pixel_size, distance) "
            "or convert it to data-exchange with the object-plane pixel",
        )
    geo = NearFieldGeometry(float(scan.detector_distance_m), focus_to_sample_m)
    py, px = scan.detector_pitch_m
    if transposed:
        py, px = px, py
    pixel = (geo.object_pixel_m(py, binning), geo.object_pixel_m(px, binning))
    record = geo.conventions(0.5 * (py + px), binning)
    return NearFieldPixels(pixel, (geo.effective_distance_m,), record)
