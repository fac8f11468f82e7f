"""What a run with the frame's corrections writes: refined positions, the corrections' results
in ``recon.h5``, the picture of the position corrections, and ``ptyframe report`` showing it.

What it would catch: a correction whose results never reach ``recon.h5`` (the positions as
recorded, no scan map, no OPR weights), the picture missing, or the report not finding it.
"""

from __future__ import annotations

import h5py
import numpy as np

from ptyframe.data.dataset import PtychoDataset
from ptyframe.runner import reconstruct
from ptyframe.simulation.simulate import simulate_dataset


def _scan() -> tuple[PtychoDataset, np.ndarray]:
    sim = simulate_dataset(
        phantom="particles",
        scan={"name": "raster", "n_y": 6, "n_x": 6, "step_px": 8.0, "jitter_px": 1.0},
        window_px=32,
        noise="none",
        object_margin_px=6,
        seed=2,
        nuisances={"position_error_px": 1.0},
    )
    ds = PtychoDataset(sim.geometry, patterns=sim.patterns, truth=sim.truth)
    return ds, np.array(sim.geometry.positions_px)


def test_a_corrected_run_writes_its_corrections_and_the_report_shows_them(tmp_path):
    ds, recorded = _scan()
    out = tmp_path / "run"
    reconstruct(
        ds,
        "epie",
        out_dir=out,
        epochs=8,
        refine={"positions": True},
        positions={"start": 2},
        probe_variation={"modes": 2, "start": 2},
        flux={"refine": True, "start": 2},
    )
    with h5py.File(out / "recon.h5", "r") as f:
        positions = np.asarray(f["positions_px"])
        moves = np.asarray(f["extras/position_corrections_px"])
        assert f.attrs["engine_backend"] == "torch"  # OPR and flux: the torch sweep
        assert f.attrs["engine_corrections"] == "flux,probe_variation,positions"
        assert f["extras/probe_weights"].shape == (36, 2)
        assert f["extras/eigen_probes"].shape == (2, 32, 32)
        assert f["extras/flux"].shape == (36,)
        assert f["extras/scan_map_parameters"].shape[0] >= 6
    assert np.abs(positions - recorded).max() > 1e-3  # refined, not as recorded
    np.testing.assert_allclose(positions - moves, recorded, atol=1e-9)
    assert (out / "position_corrections.png").stat().st_size > 5000

    from ptyframe.report.plugin import main as report

    assert report([str(out), "--out", str(tmp_path / "report")]) == 0
    shown = sorted(p.name for p in (tmp_path / "report").glob("position_corrections_*.png"))
    assert shown == ["position_corrections_1_epie.png"]
    assert "position_corrections_1_epie.png" in (tmp_path / "report" / "report.html").read_text()
