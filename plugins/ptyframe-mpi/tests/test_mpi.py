"""MPI data-parallel mode: two ranks equal one, and a failing rank aborts every rank.

Each test launches ``mpiexec -n 2`` itself (under ``timeout``), so it runs in the normal
pytest tier; each launch costs a few seconds of interpreter start-up per rank.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))
from plain_h5 import write_plain  # noqa: E402

MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not installed")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _reconstruct(ranks, data, out, *extra):
    cmd = [
        sys.executable,
        "-m",
        "ptyframe.cli",
        "reconstruct",
        f"data.path={data}",
        f"output.dir={out}",
        "progress=false",
        "output.images=false",
        "metrics.every=0",
        *extra,
    ]
    if ranks > 1:
        cmd = ["timeout", "240", MPIEXEC, "-n", str(ranks), *cmd, "distribution=mpi_data_parallel"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("mpi") / "d.h5"
    write_plain(path, m=32, n=6, step=6.0)
    return path


def test_two_ranks_match_one_for_the_autodiff_engine(tmp_path, data):
    args = ["engine=autodiff", "engine.epochs=4", "engine.minibatch=12", "dtype=complex128"]
    one = _reconstruct(1, data, tmp_path / "one", *args)
    assert one.returncode == 0, one.stderr
    two = _reconstruct(2, data, tmp_path / "two", *args)
    assert two.returncode == 0, two.stderr
    with (
        h5py.File(tmp_path / "one" / "recon.h5") as a,
        h5py.File(tmp_path / "two" / "recon.h5") as b,
    ):
        oa, ob = a["object"][()], b["object"][()]
        assert np.abs(oa - ob).max() < 1e-8 * np.abs(oa).max()
        assert np.allclose(a["history/data_error"][()], b["history/data_error"][()], rtol=1e-8)
    # only rank 0 writes: one result directory, no stray per-rank outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]


def test_two_rank_pie_runs_and_reduces_the_error(tmp_path, data):
    res = _reconstruct(
        2, data, tmp_path / "run", "engine=epie", "engine.epochs=20", "engine.alpha=0.5"
    )
    assert res.returncode == 0, res.stderr
    with h5py.File(tmp_path / "run" / "recon.h5") as f:
        err = f["history/data_error"][()]
    assert err[-1] < 0.5 * err[0]


def test_a_failing_rank_aborts_every_rank(tmp_path, data):
    script = tmp_path / "fail.py"
    script.write_text(
        "import sys\n"
        "from mpi4py import MPI\n"
        "import ptyframe.runner\n"
        "rank = MPI.COMM_WORLD.Get_rank()\n"
        "probe = 'missing_on_rank_1.npy' if rank == 1 else None\n"
        "init = {'probe': 'file', 'probe_path': probe} if probe else {}\n"
        f"cfg = {{'data': {{'name': 'file', 'path': {str(data)!r}}},\n"
        "       'engine': {'name': 'epie', 'epochs': 1000}, 'init': init,\n"
        "       'distribution': {'name': 'mpi_data_parallel'}, 'progress': False}\n"
        "ptyframe.runner.run(cfg, write=False)\n"
    )
    t0 = time.time()
    res = subprocess.run(
        ["timeout", "120", MPIEXEC, "-n", "2", sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        env=ENV,
    )
    elapsed = time.time() - t0
    assert res.returncode not in (0, 124), res.stderr  # 124 = timeout: a hang
    assert "rank 1 of 2 failed" in res.stderr and "probe file not found" in res.stderr
    assert elapsed < 60
