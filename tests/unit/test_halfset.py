"""Half-set FRC (resolution without ground truth): split, comparison, command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import ptyframe
from ptyframe.data.dataset import PtychoDataset
from ptyframe.metrics.halfset import split_halves
from ptyframe.simulation.simulate import simulate_dataset


def _lowdose_geometry(i0: float, noise: str) -> PtychoDataset:
    """The case ``conf/case/lowdose.yaml`` at dose ``i0_origin`` (in memory)."""
    overrides = [f"simulation.i0_origin={i0!r}", f"simulation.noise={noise}"]
    sim = ptyframe.simulate_case("lowdose", overrides)
    return PtychoDataset(sim.geometry, patterns=sim.patterns, truth=sim.truth)


def test_split_is_a_checkerboard_on_a_jittered_raster_and_alternates_on_a_spiral() -> None:
    rng = np.random.default_rng(0)
    grid = np.arange(10) * 8.3
    pos = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    pos += rng.uniform(-1, 1, pos.shape)
    a, b = split_halves(pos)
    assert len(a) == len(b) == 50 and len(np.intersect1d(a, b)) == 0
    # checkerboard: the four grid neighbours of every position lie in the other half
    half = np.zeros(100, int)
    half[b] = 1
    cells = half.reshape(10, 10)
    assert np.all(cells[1:] != cells[:-1]) and np.all(cells[:, 1:] != cells[:, :-1])
    # a Fermat spiral has no rows: alternate indices
    n = np.arange(1, 81)
    spiral = np.stack([np.sqrt(n) * np.cos(2.39996 * n), np.sqrt(n) * np.sin(2.39996 * n)], 1)
    a2, b2 = split_halves(10 * spiral + 100)
    np.testing.assert_array_equal(a2, np.arange(0, 80, 2))
    np.testing.assert_array_equal(b2, np.arange(1, 80, 2))


def test_halfset_resolution_is_finite_at_low_dose_and_the_noiseless_curve_is_higher() -> None:
    """rPIE (defaults, 60 sweeps per half) on the lowdose geometry: measured 0.97 / 0.90 /
    0.84 at 1/4, 1/2, 3/4 Nyquist without noise (pixel-limited), 0.25 / 0.02 / 0.00 at the
    lowdose dose with a 1/2-bit resolution of 204 nm (10.2 px). (The former defaults, alpha
    = 0.1 and beta = 1: 0.98 / 0.93 / 0.87 and 0.12 / 0.02 / -0.01, 255 nm.)"""
    from ptyframe.commands.halfset import halfset_of

    clean = halfset_of(_lowdose_geometry(1e4, "none"), "rpie", epochs=60)
    low = halfset_of(_lowdose_geometry(1e2, "poisson"), "rpie", epochs=60)
    bands = (0.25, 0.5, 0.75)
    clean_b = np.array([clean.frc.band(f) for f in bands])
    low_b = np.array([low.frc.band(f) for f in bands])
    assert np.all(clean_b > 0.8) and np.all(clean_b > low_b + 0.5)
    res_low = low.resolution_half_bit_m
    assert math.isfinite(res_low) and 4 * 20e-9 < res_low < 30 * 20e-9
    res_clean = clean.resolution_half_bit_m
    assert math.isnan(res_clean) or res_clean < 0.5 * res_low
    assert low.n_tiles == (50, 50)


def test_halfset_command_writes_json_and_png(tmp_path, monkeypatch) -> None:
    from ptyframe.commands.halfset import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "hs"
    code = main(
        ["+experiment=lowdose", "engine=rpie", "engine.epochs=3", "progress=false",
         "output.images=false", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    data = json.loads((out / "halfset.json").read_text())
    assert data["n_tiles"] == [50, 50] and data["pixel_size_nm"] == pytest.approx(20.0)
    assert len(data["curve"]["frc"]) == len(data["curve"]["freq_per_m"]) > 10
    assert (out / "halfset_frc.png").stat().st_size > 1000
    assert (out / "half_a" / "recon.h5").exists() and (out / "half_b" / "recon.h5").exists()


def test_halfset_command_on_a_file_without_truth(tmp_path, monkeypatch) -> None:
    import h5py

    from ptyframe.commands.halfset import main

    sim = simulate_dataset(
        "particles", "focused", {"name": "raster", "n_y": 5, "n_x": 5, "overlap": 0.6},
        window_px=64, i0_origin=1e4, seed=1,
    )  # fmt: skip
    path = tmp_path / "measured.h5"
    sim.write(path)
    with h5py.File(path, "a") as f:  # a measured file has no /truth
        del f["truth"]
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "hs"
    args = [f"data.path={path}", "engine=rpie", "engine.epochs=3", "progress=false"]
    assert main([*args, "output.images=false", "--out", str(out)]) == 0
    data = json.loads((out / "halfset.json").read_text())
    assert sum(data["n_tiles"]) == 25 and (out / "halfset_frc.png").exists()
