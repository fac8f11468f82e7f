"""The simulator's experimental nuisances (``simulation.nuisances``): wrong positions, a drifting
probe, a fluctuating flux; each is checked against the physics it claims."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ptyframe.engines.corrections.affine import fit_scan_map
from ptyframe.errors import ConfigError
from ptyframe.physics.farfield import FarFieldPtychography
from ptyframe.physics.fft import to_centred
from ptyframe.simulation.nuisances import NuisanceConfig, probes_at, scan_matrix
from ptyframe.simulation.simulate import simulate_dataset

SMALL = {"window_px": 32, "noise": "none", "seed": 3}
SCAN = {"name": "raster", "n_y": 5, "n_x": 6, "overlap": 0.6, "jitter_px": 0.0}


def _sim(**nuisances):
    return simulate_dataset(phantom="particles", scan=SCAN, nuisances=nuisances, **SMALL)


def test_no_nuisance_changes_nothing() -> None:
    """All-zero nuisances give the same bits as before (catches a changed random stream)."""
    a = simulate_dataset(phantom="particles", scan=SCAN, **SMALL)
    b = _sim()
    assert np.array_equal(a.patterns, b.patterns)
    assert np.array_equal(a.geometry.positions_px, b.geometry.positions_px)
    assert a.truth.extras == {} and b.truth.extras == {}


def _model(s, positions_px: np.ndarray, probe: np.ndarray | None = None) -> np.ndarray:
    """Return the noiseless centred patterns of ``s``'s truth at ``positions_px``."""
    p = torch.from_numpy(s.truth.probe if probe is None else probe).to(torch.complex128)
    obj = torch.from_numpy(s.truth.object).to(torch.complex128)
    inten = FarFieldPtychography().intensities(obj, p, torch.from_numpy(positions_px))
    return to_centred(inten).numpy()


def test_random_position_errors_have_the_asked_rms_and_keep_the_patterns() -> None:
    """Recorded = true + N(0, s^2) per axis; the patterns are those of the TRUE positions, not
    of the recorded ones (catches errors applied to the beam instead of the record, or a
    wrong RMS)."""
    clean = _sim()
    s = _sim(position_error_px=1.5)
    true, rec = s.truth.extras["positions_px"], s.geometry.positions_px
    d = (rec - true) - (rec - true).mean(0)
    assert 0.9 < float(np.sqrt((d**2).mean())) / 1.5 < 1.3  # 30 positions, 60 draws
    t0, c0 = true - true.min(0), clean.geometry.positions_px - clean.geometry.positions_px.min(0)
    assert np.allclose(t0, c0)
    ours, theirs = _model(s, true), _model(s, rec)
    assert np.allclose(s.patterns[0] / s.patterns[0].sum(), ours / ours.sum(), atol=1e-7)
    assert not np.allclose(s.patterns[0] / s.patterns[0].sum(), theirs / theirs.sum(), atol=1e-6)
    assert rec.min() >= 0 and true.min() >= 0


def test_scan_map_is_recovered_by_the_affine_fit() -> None:
    """Scale, rotation, shear and drift of the record come back from the least-squares fit
    of truth -> record (catches a sign or axis mix-up between simulator and corrections)."""
    s = simulate_dataset(
        phantom="particles",
        scan={"name": "fermat", "n_points": 40},
        nuisances={
            "scan_scale": 0.02,
            "scan_rotation_deg": 1.0,
            "scan_shear": 0.01,
            "scan_drift_y_px": 2.0,
        },
        **SMALL,
    )
    true, rec = s.truth.extras["positions_px"], s.geometry.positions_px
    fit = fit_scan_map(true, rec).parameters()
    assert fit["scale_y"] == pytest.approx(1.02, abs=1e-9)
    assert fit["scale_x"] == pytest.approx(1.02, abs=1e-9)
    assert fit["rotation_deg"] == pytest.approx(1.0, abs=1e-9)
    assert fit["shear"] == pytest.approx(0.01, abs=1e-9)
    assert fit["drift_y_px"] == pytest.approx(2.0, abs=1e-9)
    assert fit["drift_x_px"] == pytest.approx(0.0, abs=1e-9)
    a = scan_matrix(0.02, 1.0, 0.01)
    assert np.allclose(a @ a.T, 1.02**2 * np.eye(2), atol=0.03)  # a near-rotation times 1.02
    raster = _sim(scan_drift_y_px=2.0)  # time is linear in a raster's positions: no drift
    fit = fit_scan_map(raster.truth.extras["positions_px"], raster.geometry.positions_px)
    assert fit.drift.tolist() == [0.0, 0.0]
    assert np.allclose(fit.apply(raster.truth.extras["positions_px"]), raster.geometry.positions_px)


def test_drifting_probe_patterns_follow_the_per_position_probes(tmp_path: Path) -> None:
    """With a defocus and lateral drift each pattern is that of its own probe
    ``probes_at(...)[j]`` and not of the file's ``/truth/probe``; the per-position probes
    conserve power (unitary propagation) (catches a drift applied to the wrong patterns, a
    wrong sign of the parameters, or a non-unitary propagator)."""
    s = _sim(probe_defocus_drift_m=200e-6, probe_shift_x_px=3.0)
    n = s.patterns.shape[1]
    z, sh = s.truth.extras["probe_defocus_m"], s.truth.extras["probe_shift_px"]
    assert z[0] == pytest.approx(-100e-6) and z[-1] == pytest.approx(100e-6)
    assert sh[0].tolist() == pytest.approx([0.0, -1.5]) and sh[-1].tolist() == pytest.approx(
        [0.0, 1.5]
    )
    lam = s.attrs["wavelength_m"]
    p = probes_at(s.truth.probe, z, sh, 20e-9, lam).numpy()
    pos = s.geometry.positions_px
    scale = s.patterns[0].sum() / sum(_model(s, pos[j : j + 1], p[j]).sum() for j in range(n))
    for j in (0, n - 1):
        own = _model(s, pos[j : j + 1], p[j])[0] * scale
        shared = _model(s, pos[j : j + 1])[0] * scale
        err_own = np.abs(s.patterns[0, j] - own).sum() / own.sum()
        err_shared = np.abs(s.patterns[0, j] - shared).sum() / own.sum()
        assert err_own < 1e-5 and err_shared > 1e-3
    power = (np.abs(p) ** 2).sum((-2, -1))
    assert np.allclose(power, power[0], rtol=1e-9)
    s.write(tmp_path / "d.h5")
    with h5py.File(tmp_path / "d.h5") as f:
        assert f["truth/probe_defocus_m"].shape == (n,)
        assert f["truth/probe_shift_px"].shape == (n, 2)


def test_lateral_probe_drift_is_a_fourier_shift() -> None:
    """``probes_at`` with a shift of 2 px moves the probe's centre of mass by 2 px."""
    y, x = np.mgrid[:32, :32] - 16
    p = np.exp(-(y**2 + x**2) / 20.0).astype(np.complex128)
    out = probes_at(p, np.zeros(2), np.array([[0.0, 0.0], [2.0, -1.0]]), 20e-9, 1e-10)[:, 0]
    inten = out.abs() ** 2
    com = [(inten[k] * torch.from_numpy(y + 0.0)).sum() / inten[k].sum() for k in range(2)]
    assert float(com[1] - com[0]) == pytest.approx(2.0, abs=1e-6)


def test_flux_fluctuation_scales_each_pattern() -> None:
    """Each pattern's photons are its flux factor times the flux-free ones; the factors have
    mean 1 and about the asked RMS (catches flux applied per pixel or not at all)."""
    clean = _sim()
    s = _sim(flux_rms=0.1)
    f = s.truth.extras["flux"]
    assert f.mean() == pytest.approx(1.0)
    assert 0.05 < f.std() < 0.15
    ratio = s.patterns[0].sum((1, 2)) / clean.patterns[0].sum((1, 2))
    assert np.allclose(ratio, f, rtol=1e-5)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("position_error_px", -1.0, "position_error_px"),
        ("flux_rms", 2.0, "flux_rms"),
        ("probe_drift_profile", "zigzag", "probe_drift_profile"),
        ("scan_rotation_deg", math.nan, "scan_rotation_deg"),
    ],
)
def test_bad_nuisance_is_one_config_error(key: str, value: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        NuisanceConfig(**{key: value})


def test_cli_option(tmp_path: Path) -> None:
    """``ptyframe simulate simulation.nuisances.position_error_px=...`` writes the truth."""
    from ptyframe.cli import main

    out = tmp_path / "n.h5"
    rc = main(
        [
            "simulate",
            f"out={out}",
            "preview=false",
            "simulation.window_px=32",
            "simulation.noise=none",
            "scan.n_y=3",
            "scan.n_x=3",
            "simulation.nuisances.position_error_px=1.0",
            "simulation.nuisances.flux_rms=0.1",
        ]
    )
    assert rc in (0, None)
    with h5py.File(out) as f:
        assert f["truth/positions_px"].shape == (9, 2)
        assert f["truth/flux"].shape == (9,)
        assert not np.allclose(f["truth/positions_px"][()], f["metadata/probe_pos_px"][()])
