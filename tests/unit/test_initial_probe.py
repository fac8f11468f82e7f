"""The default disk probe: its radius follows the scan step (1.5 steps); on a defocused beam
it converges where the former default (a quarter of the window) stalls."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import ptyframe.runner
from ptyframe.initial import default_disk_radius_px, disk_probe
from ptyframe.simulation.probes import probe_diameter_px


def _raster(n: int, step: float) -> np.ndarray:
    g = np.arange(n) * step
    return np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)


@pytest.mark.parametrize(
    "step,expected",
    [(4.0, 128 / 16), (6.0, 9.0), (16.0, 24.0), (20.0, 30.0), (30.0, 128 / 4), (1.0, 128 / 16)],
)
def test_default_radius_is_the_scan_step_within_limits(step, expected):
    assert default_disk_radius_px((128, 128), _raster(5, step)) == pytest.approx(expected)


def test_default_radius_single_position_and_jitter():
    assert default_disk_radius_px((64, 64), np.zeros((1, 2))) == 16.0
    pos = _raster(6, 8.0) + np.random.default_rng(0).uniform(-1, 1, (36, 2))
    assert 10.0 < default_disk_radius_px((64, 64), pos) < 12.5


def test_default_disk_is_the_beam_of_a_scan_at_about_half_overlap():
    d90 = probe_diameter_px(disk_probe((128, 128), 1.5 * 16.0))
    assert 1.0 - 16.0 / d90 == pytest.approx(0.52, abs=0.02)


def _film_run(tmp_path, name: str, init: dict) -> dict:
    """ePIE (defaults) for 60 sweeps on ``+case=particle_film_small``'s geometry."""
    data = {
        "name": "simulated",
        "simulation": {"photons_per_pattern": 1e5, "seed": 0},
        "phantom": {
            "name": "particles",
            "radius_min_px": 2.0,
            "radius_max_px": 14.0,
            "max_phase_rad": 1.0,
        },
        "probe": {"name": "focused", "pupil_diameter_frac": 0.5, "beam_diameter_frac": 0.37},
        "scan": {
            "name": "raster",
            "n_y": 9,
            "n_x": 9,
            "step_px": 16.0,
            "jitter_px": 2.0,
            "integer_positions": True,
        },
    }
    ptyframe.runner.run(
        {
            "data": data,
            "engine": {"name": "epie", "epochs": 60},
            "init": init,
            "progress": False,
            "metrics": {"every": 0},
            "output": {"dir": str(tmp_path / name), "images": False},
        }
    )
    with h5py.File(tmp_path / name / "recon.h5") as f:
        return dict(f.attrs)


@pytest.mark.slow
def test_defocused_beam_default_converges_where_a_quarter_window_disk_stalls(tmp_path):
    new = _film_run(tmp_path, "new", {})
    old = _film_run(tmp_path, "old", {"probe_radius_px": 32.0})
    assert new["noise_floor_ratio"] < 1.05 and not new["stalled"]
    assert old["noise_floor_ratio"] > 1.25 and old["stalled"]
