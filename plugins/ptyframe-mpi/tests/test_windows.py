"""Row geometry, window detection, configuration checks and presets (no MPI launch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ptyframe_mpi.comm import MpiDataParallel, MpiDataParallelConfig
from ptyframe_mpi.hdf5_object import Hdf5ObjectConfig
from ptyframe_mpi.objectmode import row_ranges
from ptyframe_mpi.slabs import MpiDistributedObjectConfig
from ptyframe_mpi.windows import RowPlan, check_window_mode, tile_window, window_view

from ptyframe.errors import ConfigError


def test_row_plan_counts_holders_and_picks_the_lowest_holder_as_source():
    plan = RowPlan(10, np.array([[2, 6], [4, 9]]), np.array([[0, 5], [5, 10]]))
    assert plan.includers().tolist() == [0, 0, 1, 1, 2, 2, 1, 1, 1, 0]
    # rows 0-1 belong to nobody's window: slab owner 0; row 9: slab owner 1
    assert plan.source().tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    full = RowPlan.full(7, 3)
    assert full.includers().tolist() == [3] * 7
    assert full.slabs.tolist() == [[0, 2], [2, 5], [5, 7]]
    assert row_ranges(np.array([1, 1, 0, 1, 0, 0, 1], dtype=bool)) == [(0, 2), (3, 4), (6, 7)]


def test_tile_window_covers_floor_rows_plus_halo_and_clips():
    pos = np.array([[3.7, 0.0], [10.2, 5.0]])
    assert tile_window(pos, 8, 40, halo=0) == (3, 18)  # floor(3.7) .. floor(10.2) + 8
    assert tile_window(pos, 8, 40, halo=2) == (1, 20)
    assert tile_window(pos, 8, 19, halo=5) == (0, 19)
    assert tile_window(np.zeros((0, 2)), 8, 19, halo=5) == (0, 0)


def test_window_tensors_are_recognised_in_every_form_the_engines_pass():
    obj = torch.zeros(2, 5, 9, dtype=torch.complex64)
    v = window_view(obj, 5, 9)
    assert v is not None and v.shape == (2, 5, 18)
    v[0, 1, 2] = 3.0  # a view: writes reach the tensor (real part of pixel (1, 1))
    assert obj[0, 1, 1].real == 3.0
    assert window_view(torch.view_as_real(obj), 5, 9).shape == (2, 5, 18)  # autodiff grads
    assert window_view(torch.zeros(2, 5, 9), 5, 9).shape == (2, 5, 9)  # delta / beta
    assert window_view(torch.zeros(1, 9, 9, dtype=torch.complex64), 5, 9) is None  # probe
    assert window_view(torch.zeros(5, 9, dtype=torch.bool), 5, 9) is None  # support masks
    assert window_view(torch.zeros(9, 5).t(), 5, 9) is None  # not contiguous
    assert window_view(torch.zeros(7), 5, 9) is None


def test_window_mode_refuses_what_windows_cannot_compute_exactly():
    def run(**kw):
        base = {"engine": {"name": "epie", "center_probe": False}, "regularizers": {}}
        base.update(kw)
        return base

    check_window_mode(run(), "m")
    check_window_mode(None, "m")  # a library user without a run config
    with pytest.raises(ConfigError, match="center_probe=false"):
        check_window_mode(run(engine={"name": "rpie"}), "m")
    with pytest.raises(ConfigError, match="not pine"):
        check_window_mode(run(engine={"name": "pine"}), "m")
    ad = {"name": "autodiff"}
    check_window_mode(run(engine=ad), "m")
    with pytest.raises(ConfigError, match="regularizers"):
        check_window_mode(run(engine=ad, regularizers={"tv": {"name": "tv"}}), "m")
    with pytest.raises(ConfigError, match="element-wise"):
        check_window_mode(run(engine={**ad, "optimizers": {"object": {"name": "cg"}}}), "m")
    with pytest.raises(ConfigError, match="shrink-wrap"):
        check_window_mode(run(engine=ad, physics={"name": "farfield", "shrinkwrap_every": 5}), "m")
    with pytest.raises(ConfigError, match="not multislice_tomography"):
        check_window_mode(run(engine=ad, physics="multislice_tomography"), "m")


def test_configs_reject_bad_values():
    with pytest.raises(ConfigError, match="shard"):
        MpiDataParallelConfig(shard="random")
    with pytest.raises(ConfigError, match="threads_per_rank"):
        MpiDistributedObjectConfig(threads_per_rank=0)
    with pytest.raises(ConfigError, match="halo_px"):
        Hdf5ObjectConfig(halo_px=-1)


def _fake(rank: int, size: int, shard: str) -> MpiDataParallel:
    d = MpiDataParallel.__new__(MpiDataParallel)  # no MPI: only the shard arithmetic
    d.config, d.rank, d.size = MpiDataParallelConfig(shard=shard), rank, size
    return d


def test_shards_partition_the_tiles():
    for shard in ("contiguous", "strided"):
        parts = [_fake(r, 3, shard).shard(10) for r in range(3)]
        assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    assert _fake(1, 3, "strided").shard(10).tolist() == [1, 4, 7]
    assert _fake(1, 3, "contiguous").shard(10).tolist() == [3, 4, 5, 6]
    # rows: a spiral-like order is regrouped by row position
    pos = np.array([[9.0, 0], [0.0, 1], [5.0, 2], [1.0, 3], [8.0, 4], [4.0, 5]])
    assert _fake(0, 2, "rows").shard_tiles(pos).tolist() == [1, 3, 5]
    assert _fake(1, 2, "rows").shard_tiles(pos).tolist() == [0, 2, 4]
    with pytest.raises(ConfigError, match="shard=rows needs the tile positions"):
        _fake(0, 2, "rows").shard(6)


def test_presets_compose_through_the_plugin_search_path():
    from hydra import compose, initialize

    from ptyframe.cli import setup_hydra
    from ptyframe.plugins import build_registry, config_searchpaths, make_plugin_manager

    pm, infos = make_plugin_manager()
    registry = build_registry(pm, infos)
    paths = config_searchpaths(pm)
    assert "pkg://ptyframe_mpi.conf" in paths
    setup_hydra(registry, paths)
    with initialize(version_base="1.3", config_path=None):
        cfg = compose("reconstruct", overrides=["distribution=mpi_strided"])
        dist = registry.config("distribution", cfg.distribution)
        assert isinstance(dist, MpiDataParallelConfig) and dist.shard == "strided"
        cfg = compose("reconstruct", overrides=["distribution=hdf5_object"])
        assert registry.config("distribution", cfg.distribution).scratch_dir is None


def test_ranks_agree_on_hydra_directories_unless_the_user_set_them(monkeypatch):
    from ptyframe_mpi.rundir import agreed_dirs, launched_size

    stamp = ("2026-11-29", "12-00-00")
    assert agreed_dirs([], stamp) == [
        "hydra.run.dir=outputs/2026-11-29/12-00-00",
        "hydra.sweep.dir=multirun/2026-11-29/12-00-00",
    ]
    assert agreed_dirs(["hydra.run.dir=here", "engine=epie"], stamp) == [
        "hydra.sweep.dir=multirun/2026-11-29/12-00-00"
    ]
    # output.dir=X is the run directory (the job log goes there, not into outputs/)
    assert agreed_dirs(["output.dir=/data/run1"], stamp) == [
        "hydra.sweep.dir=multirun/2026-11-29/12-00-00"
    ]
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(key, raising=False)
    assert launched_size() == 1 and agreed_dirs([]) == []  # no launcher: nothing, no mpi4py
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert launched_size() == 4
