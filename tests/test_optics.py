"""Probes from the optics: zone-plate focus, defocused sizes, the curvature-free beam, init."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ptyframe.data.geometry import ScanGeometry
from ptyframe.data.measurements import Measurements
from ptyframe.errors import ConfigError
from ptyframe.initial import InitConfig, initial_probe
from ptyframe.simulation.optics import (
    KBMirrors,
    OpticsOptions,
    ZonePlate,
    first_zero_radius_m,
    focused_field,
    scaled_field,
)

LAM = 1.239841984e-6 / 8000.0


def edge_radius_px(field: np.ndarray) -> float:
    """Return the radius where the azimuthal mean of ``|field|^2`` falls below a quarter of
    its plateau (the mean over radii 5-15 px): a straight edge's geometric shadow boundary
    sits at a quarter of the open intensity (half the amplitude, Fresnel edge diffraction)."""
    inten = np.abs(field) ** 2
    m = inten.shape[0]
    yy, xx = np.indices(inten.shape)
    k = np.round(np.hypot(yy - m // 2, xx - m // 2)).astype(int)
    prof = np.bincount(k.ravel(), inten.ravel()) / np.bincount(k.ravel())
    half = 0.25 * prof[5:15].mean()
    edge = 15 + int(np.argmax(prof[15:] < half))
    a, b = prof[edge - 1], prof[edge]
    return float(edge - 1 + (a - half) / (a - b))


def test_zone_plate_focus_has_its_first_zero_at_1_22_outer_zones() -> None:
    """The Airy focus of a zone plate (no stop): first zero at 1.22 dr within 3 % (catches a
    pupil radius off by a factor, a focal length not D dr / lambda, a wrong frequency grid)."""
    zp = ZonePlate(150e-6, LAM, outer_zone_m=40e-9)
    dx = 4e-9
    focus = focused_field(zp, (256, 256), dx, 0.0)
    r0 = first_zero_radius_m(focus, dx)
    assert abs(r0 / (1.22 * zp.outer_zone) - 1) < 0.03, r0 / zp.outer_zone
    assert math.isclose(zp.focal_length, 150e-6 * 40e-9 / LAM)


def test_defocused_zone_plate_beam_has_the_geometric_size() -> None:
    """Far beyond the depth of focus the beam is the pupil's shadow, radius z NA (catches a
    defocus chirp of the wrong strength); a central stop leaves a dark centre."""
    dx, z = 20e-9, 1.0e-3
    zp = ZonePlate(150e-6, LAM, outer_zone_m=40e-9)
    r = edge_radius_px(focused_field(zp, (256, 256), dx, z)) * dx
    assert abs(r / (z * zp.numerical_aperture) - 1) < 0.05, r / (z * zp.numerical_aperture)
    zp = ZonePlate(150e-6, LAM, outer_zone_m=40e-9, central_stop_m=60e-6)
    inten = np.abs(focused_field(zp, (256, 256), dx, z)) ** 2
    yy, xx = np.indices(inten.shape)
    k = np.round(np.hypot(yy - 128, xx - 128)).astype(int)
    prof = np.bincount(k.ravel(), inten.ravel()) / np.bincount(k.ravel())
    stop_r_px = z * 30e-6 / zp.focal_length / dx  # the stop's shadow (Poisson spot at 0)
    inside, outside = prof[int(0.5 * stop_r_px)], prof[int(1.5 * stop_r_px)]
    assert inside < 0.1 * outside, (inside, outside)


def test_kb_beam_is_a_rectangle_of_the_geometric_widths() -> None:
    """KB mirrors: widths 2 z a / (2 f) per axis, different focal lengths per axis."""
    kb = KBMirrors((300e-6, 300e-6), (0.3, 0.15), LAM)
    dx, z = 20e-9, 2e-3
    inten = np.abs(focused_field(kb, (256, 256), dx, z)) ** 2
    for axis, half in zip((0, 1), kb.half_widths_m, strict=True):
        cut = inten[:, 128] if axis == 0 else inten[128, :]
        lit = np.count_nonzero(cut > 0.25 * cut[120:136].mean())  # the geometric edge
        assert abs(lit * dx / (2 * z * half) - 1) < 0.06, (axis, lit * dx / (2 * z * half))


def test_curvature_free_beam_is_the_beam_without_its_sphere() -> None:
    """Where both are sampled, ``focused_field = exp(i pi |x|^2 / (lambda z)) scaled_field``
    up to one complex constant: the completion of the square behind the cone-beam probe."""
    zp = ZonePlate(100e-6, LAM, outer_zone_m=60e-9)
    dx, z, m = 25e-9, 0.4e-3, 192
    p = focused_field(zp, (m, m), dx, z, edge_px=3.0)
    q = scaled_field(zp, (m, m), dx, z, edge_px=3.0 * LAM * z / (m * dx**2))  # same edge
    c = (np.arange(m) - m // 2) * dx
    sphere = np.exp(1j * math.pi * (c[:, None] ** 2 + c[None, :] ** 2) / (LAM * z))
    model = sphere * q
    lit = np.abs(p) > 0.3 * np.abs(p).max()
    k = np.vdot(model[lit], p[lit]) / np.vdot(model[lit], model[lit])
    err = np.linalg.norm((k * model - p)[lit]) / np.linalg.norm(p[lit])
    assert err < 0.05, err


def test_undersampled_optics_are_refused_with_the_fix() -> None:
    """A cone finer than the pixel carries, a beam wider than the window, a chirp too steep."""
    zp = ZonePlate(150e-6, LAM, outer_zone_m=20e-9)
    with pytest.raises(ConfigError, match="focus_to_sample_m"):
        focused_field(zp, (64, 64), 30e-9, 0.0)
    with pytest.raises(ConfigError, match="wrap round"):
        focused_field(ZonePlate(150e-6, LAM, outer_zone_m=80e-9), (64, 64), 30e-9, 1e-3)
    with pytest.raises(ConfigError, match="enlarge the window"):
        scaled_field(zp, (64, 64), 10e-9, 1e-3)
    with pytest.raises(ConfigError, match="exactly one"):
        ZonePlate(150e-6, LAM, outer_zone_m=50e-9, focal_length_m=0.1)


def dataset(m: int, conventions: dict) -> SimpleNamespace:
    geom = ScanGeometry(np.zeros((4, 2)), (m, m), (m, m), 12660.0, 178.7e-9)
    return SimpleNamespace(geometry=geom, conventions=conventions, truth=None)


def test_init_probe_from_kb_optics_in_the_cone_beam_frame() -> None:
    """``init.probe=kb`` on a cone-beam dataset: the shadow of the mirrors at the sample (no
    curvature: flat phase over the plateau), scaled to the measured photons per pattern."""
    m = 96
    opts = OpticsOptions(aperture_m=[300e-6, 300e-6], focal_lengths_m=[0.3, 0.2])
    cfg = InitConfig(probe="kb", optics=opts)
    amps = torch.full((4, m, m), 10.0)
    ds = dataset(m, {"focus_to_sample_m": 3.65e-3})
    meas = Measurements(amps, None, np.arange(4), ds.geometry)
    probe = initial_probe(cfg, ds, meas)
    assert probe.shape == (1, m, m)
    assert math.isclose(float(np.sum(np.abs(probe) ** 2)), 100.0 * m * m, rel_tol=1e-9)
    centre = probe[0, m // 2 - 4 : m // 2 + 4, m // 2 - 4 : m // 2 + 4]
    assert np.ptp(np.angle(centre)) < 0.3  # no sphere of radius 3.65 mm left in the phase
    with pytest.raises(ConfigError, match="aperture_m"):
        initial_probe(InitConfig(probe="kb"), ds, meas)


def test_flat_field_probe_is_the_root_of_the_mean_image_as_recorded() -> None:
    """``init.probe=flat_field``: sqrt of the mean hologram in the recorded (not the detector)
    order, so a beam off the centre of the frame stays where it is."""
    m = 16
    img = np.zeros((m, m))
    img[2:6, 9:14] = 4.0
    amps = torch.from_numpy(np.sqrt(np.fft.ifftshift(np.stack([img, img]), axes=(-2, -1))))
    ds = dataset(m, {})
    meas = Measurements(amps, None, np.arange(2), ds.geometry)
    probe = initial_probe(InitConfig(probe="flat_field"), ds, meas)
    assert np.allclose(probe[0], np.sqrt(img))
