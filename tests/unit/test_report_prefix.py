"""The report recomputes FRC values recorded by the pre-fix metric (vacuum-substituted FRC)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest


def test_prefix_frc_values_are_recomputed_and_flagged(tmp_path) -> None:
    from ptyframe.metrics.frc import frc_against_truth
    from ptyframe.report.gather import load_runs
    from ptyframe.runner import reconstruct
    from ptyframe.simulation.simulate import simulate_dataset

    scan = {"name": "raster", "n_y": 5, "n_x": 5, "overlap": 0.6, "jitter_px": 1.0}
    sim = simulate_dataset("particles", "focused", scan, window_px=64, i0_origin=1e4, seed=0)
    data = tmp_path / "d.h5"
    sim.write(data)
    out = tmp_path / "run"
    reconstruct(data, "rpie", out_dir=out, epochs=4, metrics_every=2)
    (fresh,) = load_runs(out)
    assert fresh.row["frc_metric"] == "windowed" and "frc_quarter_nyquist@4" in fresh.row
    with h5py.File(out / "recon.h5", "a") as f:  # make it look like a pre-fix run
        del f["history/frc_quarter_nyquist"], f["final/frc"]
        f["history/frc_half_nyquist"][...] = 0.47
        obj = f["object"][()]
    (old,) = load_runs(out)
    assert old.row["frc_metric"] == "recomputed-final"
    assert not any("@" in k for k in old.row if k.startswith("frc_"))
    res, _ = frc_against_truth(obj[0], sim.truth.object[0], sim.truth.illumination, 20e-9)
    assert old.row["frc_half_nyquist"] == pytest.approx(res.band(0.5), abs=1e-9)
    assert old.row["frc_half_nyquist"] != pytest.approx(0.47, abs=0.01)
    assert np.allclose(old.frc_curve[1], res.frc, equal_nan=True)
