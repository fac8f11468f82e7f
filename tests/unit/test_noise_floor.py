"""The Poisson noise floor of the data error, and the stall warning at the end of a run."""

from __future__ import annotations

import logging
import math

import h5py
import numpy as np
import pytest
import torch

import ptyframe.runner
from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.measurements import Measurements
from ptyframe.distributed.base import SingleProcess
from ptyframe.metrics.noise_floor import (
    LARGE_COUNT_LIMIT,
    STALL_FACTOR,
    StallCheck,
    are_counts,
    check_run,
    expected_abs_amplitude_error,
    model_noise_floor,
    noise_floor,
)
from ptyframe.physics.farfield import FarFieldPtychography
from ptyframe.simulation.simulate import simulate_dataset

SETTINGS = {"window_px": 64, "seed": 3}
SCAN = {"name": "raster", "n_y": 6, "n_x": 6}
PHANTOM = {"name": "particles", "radius_max_px": 6.0, "max_phase_rad": 0.6}


@pytest.mark.parametrize("lam", [0.003, 0.2, 1.0, 4.0, 30.0, 2000.0])
def test_series_matches_a_poisson_monte_carlo(lam):
    draws = np.random.default_rng(1).poisson(lam, 400_000)
    dev = np.abs(np.sqrt(draws) - math.sqrt(lam))
    mc, sem = dev.mean(), dev.std() / math.sqrt(draws.size)
    assert abs(float(expected_abs_amplitude_error(lam)) - mc) < 4 * sem + 1e-4


def test_limits_small_and_large_counts():
    tiny = 1e-6
    assert expected_abs_amplitude_error(tiny) == pytest.approx(math.sqrt(tiny), rel=1e-3)
    assert expected_abs_amplitude_error(1e7) == pytest.approx(LARGE_COUNT_LIMIT)
    assert expected_abs_amplitude_error(9e3) == pytest.approx(LARGE_COUNT_LIMIT, rel=1e-3)
    assert LARGE_COUNT_LIMIT == pytest.approx(0.5 * math.sqrt(2 / math.pi))


def _truth_error(photons: float) -> tuple[float, float, float]:
    sim = simulate_dataset(PHANTOM, "focused", SCAN, photons_per_pattern=photons, **SETTINGS)
    ds = PtychoDataset(sim.geometry, patterns=sim.patterns, truth=sim.truth)
    meas = Measurements.from_dataset(ds, dtype=torch.float64)
    lam = FarFieldPtychography().intensities(
        torch.from_numpy(sim.truth.object.astype(np.complex128)),
        torch.from_numpy(sim.truth.probe.astype(np.complex128)),
        torch.from_numpy(sim.geometry.positions_px),
    )
    err = float((lam.sqrt() - meas.amplitudes).abs().sum() / meas.amplitudes.sum())
    return err, noise_floor(meas.amplitudes), model_noise_floor(lam, meas.amplitudes)


@pytest.mark.parametrize("photons", [1e3, 2e4, 1e6])
def test_true_object_and_probe_score_at_the_floor(photons):
    """The error of the truth on Poisson data is the floor, from the counts alone (3 %)."""
    err, floor, model_floor = _truth_error(photons)
    assert floor == pytest.approx(err, rel=0.03)
    assert model_floor == pytest.approx(err, rel=0.01)


def test_floor_falls_with_dose():
    floors = [_truth_error(p)[1] for p in (1e3, 1e6)]
    assert floors[0] > 4 * floors[1]


def test_scaled_data_are_not_counts():
    amps = torch.sqrt(torch.tensor([[[0.0, 1.0], [4.0, 9.0]]], dtype=torch.float32))
    assert are_counts(amps)
    assert not are_counts(amps * 0.7)


def test_stall_check_ratio_and_attrs():
    ok = StallCheck(0.21, 0.2)
    bad = StallCheck(0.2 * STALL_FACTOR * 1.1, 0.2)
    assert not ok.stalled and bad.stalled
    assert bad.attrs() == {
        "noise_floor": 0.2,
        "noise_floor_ratio": pytest.approx(STALL_FACTOR * 1.1),
        "stalled": True,
    }
    assert "noise floor" in bad.warning()
    assert not StallCheck(float("nan"), 0.2).stalled
    assert not StallCheck(0.3, float("nan")).stalled


def test_check_run_skips_scaled_data():
    meas = Measurements(torch.full((2, 4, 4), 0.3), None, np.arange(2), None, 0)  # type: ignore[arg-type]
    attrs = check_run(meas, SingleProcess(), 0.9)
    assert math.isnan(attrs["noise_floor"]) and attrs["stalled"] is False


def _run(tmp_path, name, engine, init):
    cfg = {
        "data": {
            "name": "simulated",
            "simulation": {"photons_per_pattern": 2e4, **SETTINGS},
            "scan": SCAN,
            "phantom": PHANTOM,
        },
        "engine": {"name": "epie", **engine},
        "init": init,
        "progress": False,
        "metrics": {"every": 0},
        "output": {"dir": str(tmp_path / name), "images": False},
    }
    ptyframe.runner.run(cfg)
    with h5py.File(tmp_path / name / "recon.h5") as f:
        return dict(f.attrs)


def test_stall_warning_fires_on_a_stalled_run_only(tmp_path, caplog):
    """A run held at a wrong probe ends far above the floor and says so; a good one does not."""
    with caplog.at_level(logging.WARNING, logger="ptyframe"):
        good = _run(tmp_path, "good", {"epochs": 20}, {"probe": "truth"})
    assert not any("noise floor" in r.getMessage() for r in caplog.records)
    assert good["stalled"] == np.False_ and good["noise_floor_ratio"] < 1.1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ptyframe"):
        bad = _run(tmp_path, "bad", {"epochs": 20, "fix_probe": True}, {"probe_radius_px": 6.0})
    lines = [r.getMessage() for r in caplog.records if "noise floor" in r.getMessage()]
    assert len(lines) == 1, lines
    assert bad["stalled"] == np.True_ and bad["noise_floor_ratio"] > 1.5
    assert bad["noise_floor"] == pytest.approx(good["noise_floor"])
