"""Near-field scans as beamlines record them: the cone-beam pixel rule and the field check.

Every file is simulated here: cone-beam holograms by ``ptyframe.simulation.nearfield`` (CXI,
as a beamline writes it, nothing said about the near field) and far-field patterns by the
``ptycho2d`` simulator written as CXI with a detector that gives the same object pixel.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import ptyframe
from ptyframe.data.measurements import Measurements
from ptyframe.data.reader import EV_J
from ptyframe.errors import ConfigError, DataValidationError
from ptyframe.physics.multislice import Batch, PtychoModel
from ptyframe.physics.nearfield import NearFieldConfig
from ptyframe.registry import BuildContext
from ptyframe.simulation.simulate import simulate_dataset

Z1, Z2, PITCH = 3.65e-3, 1.12, 55e-6


@pytest.fixture(scope="module")
def registry() -> ptyframe.Registry:
    return ptyframe.registry()


def cone_scan(registry, path: Path, photons: float = 1e7, z1: float | None = Z1, **kw):
    """Simulate a 64 px cone-beam scan of 40 points (the issue's geometry otherwise)."""
    sim = registry.build(
        "simulation",
        {
            "name": "conebeam",
            "window_px": 64,
            "photons_per_frame": photons,
            "focus_to_sample_m": z1,
            **kw,
        },
    )
    probe = registry.build(
        "probe", {"name": "kb", "aperture_m": [1.4e-3, 1.4e-3], "focal_lengths_m": [0.25, 0.25]}
    )
    if z1 is None:
        probe = registry.build("probe", {"name": "gaussian", "fwhm_px": 90.0})
    data = sim.run(
        registry.build("phantom", "particles"),
        probe,
        registry.build("scan", {"name": "fermat", "n_points": 40}),
    )
    data.write(path, overwrite=True)
    return data


def far_cxi(registry, path: Path, photons: float, **probe) -> float:
    """Write a far-field scan as CXI (detector chosen for a 20 nm pixel); return the pitch."""
    d = simulate_dataset(
        probe={"name": "focused", **probe},
        scan={"name": "fermat", "n_points": 40, "overlap": 0.7},
        registry=registry,
        window_px=64,
        photons_per_pattern=photons,
    )
    g = d.geometry
    z = 5.0
    pitch = g.wavelength_m * z / (64 * g.pixel_size_m)
    centres = (g.positions_px + 32) * g.pixel_size_m
    with h5py.File(path, "w") as f:
        det = f.create_group("entry_1/instrument_1/detector_1")
        det["data"] = np.round(d.patterns[0]).astype(np.uint32)
        det["distance"] = z
        det["x_pixel_size"] = det["y_pixel_size"] = pitch
        f["entry_1/instrument_1/source_1/energy"] = g.energy_ev * EV_J
        f["entry_1/sample_1/geometry_1/translation"] = np.c_[
            centres[:, 1], centres[:, 0], 0 * centres[:, 0]
        ]
    return pitch


def read(registry, path: Path, **kw):
    return registry.build(
        "dataset", {"name": "file", "path": str(path), **kw}, BuildContext(registry)
    )


def test_cone_beam_cxi_gives_the_fresnel_scaled_pixel_distance_and_positions(
    registry, tmp_path
) -> None:
    """The issue's numbers: 55 um pixels, z1 3.65 mm, z2 1.12 m give M = 307.8, a pixel of
    178.66 nm (not the far field's 19.9 nm) and z2 / M; positions and truth come back as
    simulated, and recon.h5's conventions record the rule."""
    data = cone_scan(registry, tmp_path / "c.cxi")
    ds = read(registry, tmp_path / "c.cxi", field="near", focus_to_sample_m=Z1)
    mag = (Z1 + Z2) / Z1
    g = ds.geometry
    assert math.isclose(g.pixel_size_m, PITCH / mag, rel_tol=1e-12)
    assert abs(g.pixel_size_m - 178.7e-9) < 0.02 * 178.7e-9
    assert math.isclose(g.free_prop_m[0], Z2 / mag, rel_tol=1e-12)
    assert np.allclose(g.positions_px, data.geometry.positions_px, atol=1e-9)
    assert g.object_shape == data.geometry.object_shape and ds.has_truth
    c = ds.conventions
    assert math.isclose(c["magnification"], mag) and c["focus_to_sample_m"] == Z1
    assert "cone beam" in c["field"]


def test_plane_wave_near_field_keeps_the_detector_pixel(registry, tmp_path) -> None:
    """No z1: the object pixel is the detector pixel and the distance z2 (a plane wave)."""
    cone_scan(registry, tmp_path / "p.cxi", z1=None, step_m=1.2e-6 * 308)
    ds = read(registry, tmp_path / "p.cxi", field="near")
    assert math.isclose(ds.geometry.pixel_size_m, PITCH) and ds.geometry.free_prop_m == (Z2,)


def test_hologram_read_from_a_file_matches_the_near_field_model(registry, tmp_path) -> None:
    """Through ``Measurements.from_dataset`` (every frame through ``from_centred``) the
    autodiff near-field model with the true object and probe reproduces the noiseless
    holograms: catches a detector-order mismatch (a copy rolled by half a frame)."""
    cone_scan(
        registry,
        tmp_path / "n.cxi",
        noise="none",
        probe_modes=1,
        flux_rms=0.0,
        gain_rms=0.0,
        dead_fraction=0.0,
        stripes_rms=0.0,
    )
    ds = read(registry, tmp_path / "n.cxi", field="near", focus_to_sample_m=Z1)
    meas = Measurements.from_dataset(ds, dtype=torch.float64)
    model = PtychoModel(NearFieldConfig(buffer_px=0))
    model.setup(ds.geometry)
    t = ds.truth
    v = {
        "object": torch.from_numpy(t.object.astype(np.complex128)),
        "probe": torch.from_numpy(t.probe.astype(np.complex128)),
        "positions": torch.from_numpy(ds.geometry.positions_px),
        "free_prop_m": torch.tensor(ds.geometry.free_prop_m, dtype=torch.float64),
    }
    inner = slice(12, -12)  # the model has no margin: compare away from the wrapped edges
    pred = model.predict(v, Batch(0, torch.arange(ds.n_tiles))).sqrt()
    pred = torch.fft.fftshift(pred, dim=(-2, -1))[:, inner, inner]
    meas_img = torch.fft.fftshift(meas.amplitudes, dim=(-2, -1))[:, inner, inner]
    err = float((pred - meas_img).norm() / meas_img.norm())
    assert err < 2e-3, err  # counts are rounded; a frame rolled by half its size fails this


@pytest.mark.parametrize("photons", [1e3, 1e5, 1e7])
def test_holograms_read_as_far_field_are_refused_with_the_fix(registry, tmp_path, photons) -> None:
    """A cone-beam scan read with the far-field rule (the default physics): one error naming
    the near-field preset and the z1 the holograms' shifts imply (when they are clear)."""
    cone_scan(registry, tmp_path / "f.cxi", photons)
    with pytest.raises(DataValidationError, match=r"near-field holograms.*\+imaging=nearfield"):
        read(registry, tmp_path / "f.cxi", field="far")


@pytest.mark.parametrize("photons", [1e3, 1e5, 1e7])
def test_holograms_read_as_near_field_pass(registry, tmp_path, photons, caplog) -> None:
    """The right z1 at any of three doses: no error and no warning (no false alarm)."""
    cone_scan(registry, tmp_path / "ok.cxi", photons)
    with caplog.at_level(logging.WARNING, logger="ptyframe"):
        read(registry, tmp_path / "ok.cxi", field="near", focus_to_sample_m=Z1)
    assert not caplog.records


def test_missing_or_wrong_z1_is_named_from_the_holograms_shifts(registry, tmp_path) -> None:
    """Read as near field without z1 (the plane-wave pixel, 55 um) or with a wrong one: the
    holograms move ~6.7 px per 1.2 um step, which implies z1 ~ 3.65 mm; the message says so."""
    cone_scan(registry, tmp_path / "z.cxi")
    for kw in ({}, {"focus_to_sample_m": 2e-3}):
        with pytest.raises(DataValidationError, match="focus_to_sample_m=") as err:
            read(registry, tmp_path / "z.cxi", field="near", **kw)
        z1 = float(str(err.value).split("focus_to_sample_m=")[1].split(";")[0])
        assert abs(z1 / Z1 - 1) < 0.1, z1


@pytest.mark.parametrize("photons", [1e4, 1e6, 1e8])
def test_far_field_patterns_read_as_near_field_are_refused(registry, tmp_path, photons) -> None:
    """Far-field patterns (a defocused zone-plate-like beam) read as near field: refused."""
    far_cxi(registry, tmp_path / "ff.cxi", photons)
    with pytest.raises(DataValidationError, match="far field"):
        read(registry, tmp_path / "ff.cxi", field="near")


@pytest.mark.parametrize("photons", [1e2, 1e4, 1e6, 1e8])
def test_far_field_patterns_read_as_far_field_pass(registry, tmp_path, photons, caplog) -> None:
    """No false alarm on far-field scans, from a compact to a detector-filling bright field
    (pupil 0.9 of the frame: a warning at most)."""
    far_cxi(registry, tmp_path / "a.cxi", photons)
    far_cxi(registry, tmp_path / "b.cxi", photons, pupil_diameter_frac=0.9, beam_diameter_frac=0.3)
    with caplog.at_level(logging.WARNING, logger="ptyframe"):
        read(registry, tmp_path / "a.cxi", field="far")
    assert not caplog.records
    read(registry, tmp_path / "b.cxi", field="far")


def test_a_few_photons_decide_nothing(registry, tmp_path) -> None:
    """At 100 photons per 64x64 frame the lit fraction is noise: no error either way."""
    cone_scan(registry, tmp_path / "low.cxi", 1e2)
    read(registry, tmp_path / "low.cxi", field="near", focus_to_sample_m=Z1)


def test_the_field_options_are_checked(registry, tmp_path) -> None:
    """z1 with a far-field read, z1 on a data-exchange file, a forced field against the
    physics, an unknown field: one error each, naming the fix."""
    cone_scan(registry, tmp_path / "o.cxi")
    with pytest.raises(DataValidationError, match="nearfield_conebeam"):
        read(registry, tmp_path / "o.cxi", field="far", focus_to_sample_m=Z1)
    d = simulate_dataset(
        scan={"name": "raster", "n_y": 2, "n_x": 2}, registry=registry, window_px=32, noise="none"
    )
    d.write(tmp_path / "x.h5")
    with pytest.raises(DataValidationError, match="drop data.focus_to_sample_m"):
        read(registry, tmp_path / "x.h5", field="near", focus_to_sample_m=Z1, check_field=False)
    with pytest.raises(ConfigError, match="data.field"):
        read(registry, tmp_path / "o.cxi", field="middle")
    from ptyframe.compose import data_config
    from ptyframe.config import ReconstructConfig
    from ptyframe.data.sources import FileDataConfig

    cfg = ReconstructConfig(data=FileDataConfig(path="o.cxi", field="near"))
    with pytest.raises(ConfigError, match="engine=epie reconstructs in the far field"):
        data_config(cfg, registry)


def test_auto_field_follows_the_physics(registry) -> None:
    """``data.field=auto`` reads near field for a near-field physics, far field otherwise."""
    from ptyframe.compose import data_config
    from ptyframe.config import ReconstructConfig
    from ptyframe.data.sources import FileDataConfig
    from ptyframe.engines.autodiff import AutodiffConfig
    from ptyframe.physics.multislice import MultisliceConfig

    near = ReconstructConfig(
        data=FileDataConfig(path="f.cxi"), engine=AutodiffConfig(), physics=NearFieldConfig()
    )
    assert data_config(near, registry).field == "near"
    far = ReconstructConfig(
        data=FileDataConfig(path="f.cxi"), engine=AutodiffConfig(), physics=MultisliceConfig()
    )
    assert data_config(far, registry).field == "far"
    assert (
        data_config(ReconstructConfig(data=FileDataConfig(path="f.cxi")), registry).field == "far"
    )


def test_holograms_of_one_position_at_several_distances_decide_nothing() -> None:
    """Multi-distance holography stores tiles that did not move: the shift statistic has no
    pair to measure and says nothing (no pixel implied from a zero step)."""
    from ptyframe.data.fieldcheck import hologram_shift

    rng = np.random.default_rng(0)
    frames = rng.poisson(1e3, (6, 32, 32)).astype(float)
    pairs = np.array([[0, 3], [1, 4], [2, 5], [3, 0], [4, 1]])
    assert hologram_shift(frames, pairs, np.zeros(5)) is None
