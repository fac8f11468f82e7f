"""MPI tier: the exchange primitives of the object modes against explicit NumPy sums.

Runs inside ``mpiexec -n 2 python -m pytest -m mpi ...`` (any world size works, 1 included).
Every rank builds the same random data from fixed seeds, so each can compute the expected
result of a reduction by itself and compare with what the exchange delivered.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptyframe.state import ReconstructionState

pytestmark = pytest.mark.mpi

NY, NX, M = 61, 40, 12


def _dists(exchange_mib: float = 16.0):
    from ptyframe_mpi.hdf5_object import Hdf5Object, Hdf5ObjectConfig
    from ptyframe_mpi.slabs import MpiDistributedObject, MpiDistributedObjectConfig

    kw = {"halo_px": 1, "exchange_mib": exchange_mib}
    return [
        MpiDistributedObject(MpiDistributedObjectConfig(**kw)),
        Hdf5Object(Hdf5ObjectConfig(**kw)),
    ]


def _state(slices: int = 1) -> tuple[ReconstructionState, np.ndarray]:
    """Return a random state and tile positions (rows 5 .. 45: rows 0-3, 58-60 untouched)."""
    rng = np.random.default_rng(7)
    obj = rng.standard_normal((slices, NY, NX)) + 1j * rng.standard_normal((slices, NY, NX))
    ys = np.linspace(5, NY - M - 4, 9)
    pos = np.stack([ys, np.linspace(0, NX - M, 9)], axis=1)
    probe = torch.ones(1, M, M, dtype=torch.complex128)
    st = ReconstructionState(torch.from_numpy(obj), probe, torch.from_numpy(pos))
    return st, pos


@pytest.mark.parametrize(("slices", "mib"), [(1, 16.0), (2, 16.0), (1, 0.002)])
@pytest.mark.parametrize("which", [0, 1], ids=["slabs", "hdf5"])
def test_window_sum_mean_and_gather_equal_the_replicated_result(which, slices, mib):
    dist = _dists(mib)[which]  # 0.002 MiB: three rows per piece, many exchange rounds
    full, pos = _state(slices)
    idx = dist.shard(len(pos))
    local = dist.localize_state(full.clone(), idx)
    a, b = (int(v) for v in dist.plan.windows[dist.rank])
    assert local.object.shape == (slices, b - a, NX)
    assert torch.equal(local.object, full.object[:, a:b])
    assert np.allclose(local.positions_px[idx, 0].numpy(), pos[idx, 0] - a)

    # every rank's replica: the old object with its window changed by a rank-seeded update
    replicas = []
    for r in range(dist.size):
        ra, rb = dist.plan.windows[r]
        rep = full.object.clone()
        g = torch.Generator().manual_seed(100 + r)
        rep[:, ra:rb] += torch.randn(rep[:, ra:rb].shape, generator=g, dtype=torch.complex128)
        replicas.append(rep)
    mine = replicas[dist.rank][:, a:b].clone()

    # sum (autodiff gradients, passed as real views): over the ranks holding each row
    rows = np.arange(a, b)
    covered = [(rows >= lo) & (rows < hi) for lo, hi in dist.plan.windows]
    values = mine.clone()
    dist.allreduce_sum_(torch.view_as_real(values))
    expect_sum = sum(
        torch.where(torch.from_numpy(c)[None, :, None], rep[:, a:b], 0)
        for rep, c in zip(replicas, covered, strict=True)
    )
    assert torch.allclose(values, expect_sum, rtol=0, atol=1e-12)

    # mean over all ranks: ranks without a row count with the old value (PIE averaging)
    obj = mine.clone()
    local.object.copy_(obj)
    dist.allreduce_mean_(local.object)
    expect_mean = (sum(replicas) / dist.size)[:, a:b]
    assert torch.allclose(local.object, expect_mean, rtol=0, atol=1e-12)

    # gather: the whole object on the root, untouched rows from the start
    whole = dist.gather_state(local)
    if dist.is_root:
        assert whole is not None
        truth = sum(replicas) / dist.size
        assert torch.allclose(whole.object, truth, rtol=0, atol=1e-12)
        assert np.allclose(whole.positions_px.numpy(), pos)
        untouched = dist.plan.includers() == 0
        assert untouched.any()
        assert torch.equal(whole.object[:, untouched], full.object[:, untouched])
    else:
        assert whole is None
    if which == 1:  # object.h5 holds the final object too (token or collective writes)
        import h5py

        dist.barrier()
        with h5py.File(dist.object_path, "r", locking=False) as f:
            stored = f["object"][()]
        stored = torch.view_as_complex(torch.from_numpy(stored).reshape(slices, NY, NX, 2))
        truth = sum(replicas) / dist.size
        covered_rows = dist.plan.includers() > 0
        assert torch.allclose(stored[:, covered_rows], truth[:, covered_rows], atol=1e-12)
        dist.barrier()


def test_hdf5_object_writes_collectively_where_h5py_has_mpi():
    """With a parallel-HDF5 h5py (``make parallel-hdf5``) object.h5 is written collectively."""
    import h5py

    if not h5py.get_config().mpi:
        pytest.skip("h5py built without MPI (the PyPI wheel): object.h5 written in turn")
    dist = _dists()[1]
    assert dist.collective == (dist.size > 1)


@pytest.mark.parametrize("mib", [16.0, 1e-4])
def test_replicated_reduction_equals_allreduce(mib):
    from ptyframe_mpi.comm import MpiDataParallel, MpiDataParallelConfig

    dp = MpiDataParallel(MpiDataParallelConfig(exchange_mib=mib))
    for dist in [*_dists(mib), dp]:
        dist.config.min_routed_elements = 0
        g = torch.Generator().manual_seed(dist.rank)
        x = torch.randn(3, 17, 5, generator=g, dtype=torch.float32)
        expect = sum(
            torch.randn(3, 17, 5, generator=torch.Generator().manual_seed(r), dtype=torch.float32)
            for r in range(dist.size)
        )
        dist.allreduce_sum_(x)
        assert torch.allclose(x, expect, atol=1e-5)
        y = torch.full((4, 9), float(dist.rank), dtype=torch.complex64)
        dist.allreduce_mean_(y)
        assert torch.allclose(y.real, torch.full((4, 9), (dist.size - 1) / 2))


def test_a_tensor_that_is_a_window_on_some_ranks_only_raises_everywhere():
    dist = _dists()[0]
    full, pos = _state()
    local = dist.localize_state(full.clone(), dist.shard(len(pos)))
    if dist.size < 2:
        pytest.skip("needs two ranks")
    odd = local.object if dist.rank == 0 else torch.zeros(3, dtype=torch.complex128)
    with pytest.raises(RuntimeError, match="object window on some ranks only"):
        dist.allreduce_sum_(odd)


@pytest.mark.parametrize("mode", ["mpi_distributed_object", "hdf5_object"])
def test_the_runner_gathers_windows_for_metrics_checkpoints_and_outputs(mode, tmp_path):
    """A windowed run through ``ptyframe.runner.run`` equals data-parallel, metrics included.

    Truth metrics every 2 epochs and checkpoints every 3 make the runner gather the windows
    (collectively) in the middle of the run; the final ``recon.h5`` holds the whole object.
    """
    import h5py

    from ptyframe.runner import run

    from synth import make_dataset

    ds = make_dataset(m=24, n=6, step=5.0, jitter=0.5)
    out = {}
    for name in ("mpi_data_parallel", mode):
        cfg = {
            "engine": {"name": "epie", "epochs": 7, "alpha": 0.5, "center_probe": False},
            "distribution": {"name": name, "halo_px": 1} if name == mode else {"name": name},
            "metrics": {"every": 2},
            "output": {"checkpoint_every": 3, "images": False},
            "dtype": "complex128",
            "progress": False,
        }
        res = run(cfg, dataset=ds, out_dir=tmp_path / name)
        out[name] = res
    dp, win = out["mpi_data_parallel"], out[mode]
    if win.out_dir is None:  # not the root: the run kept this rank's window only
        assert win.state.object.shape[-2] < dp.state.object.shape[-2]
        return
    assert torch.allclose(win.state.object, dp.state.object, rtol=0, atol=1e-12)
    cols = set(dp.history.columns) - {"seconds"}
    assert {"data_error", "nrmse"} <= cols and len(cols) > 2  # truth metrics were computed
    for key in cols:
        a, b = np.asarray(win.history.columns[key]), np.asarray(dp.history.columns[key])
        if key == "nrmse":
            assert np.isfinite(b).sum() == 4  # gathered at epochs 2, 4, 6 and the last
        assert np.allclose(a, b, rtol=1e-10, equal_nan=True), key
    with h5py.File(win.out_dir / "recon.h5") as f:
        assert f["object"].shape == tuple(dp.state.object.shape)
    assert not (win.out_dir / "checkpoint.h5").exists()  # removed once finished


def test_an_unusable_scratch_dir_fails_on_every_rank_with_one_message(tmp_path):
    from ptyframe_mpi.hdf5_object import Hdf5Object, Hdf5ObjectConfig

    from ptyframe.errors import ConfigError

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot create its files in .*a_file/scratch"):
        Hdf5Object(Hdf5ObjectConfig(scratch_dir=str(blocker / "scratch")))
