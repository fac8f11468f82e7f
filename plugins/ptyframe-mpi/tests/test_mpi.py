"""The MPI modes end to end: each test launches ``mpiexec -n 2`` itself (under ``timeout``).

They run in the normal pytest tier; each launch costs a few seconds of interpreter start-up
per rank, so the checks are grouped: one launch compares every mode with data-parallel for
both engine families, one drives the command line through a Hydra multirun of two modes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from plain_h5 import write_plain

ROOT = Path(__file__).resolve().parents[3]

MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not installed")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _mpiexec(ranks, *cmd, cwd=None, limit=240):
    full = ["timeout", str(limit), MPIEXEC, "-n", str(ranks), *map(str, cmd)]
    return subprocess.run(
        full, capture_output=True, text=True, timeout=limit + 60, env=ENV, cwd=cwd
    )


def _cli(*args):
    return [sys.executable, "-m", "ptyframe.cli", "reconstruct", *args, "progress=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("mpi") / "d.h5"
    write_plain(path, m=32, n=6, step=6.0)
    return path


def test_two_ranks_match_one_for_the_autodiff_engine(tmp_path, data):
    args = [
        f"data.path={data}",
        "output.images=false",
        "metrics.every=0",
        "engine=autodiff",
        "engine.epochs=4",
        "engine.minibatch=12",
        "dtype=complex128",
    ]
    one = subprocess.run(
        _cli(*args, f"output.dir={tmp_path / 'one'}"),
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )
    assert one.returncode == 0, one.stderr
    two = _mpiexec(
        2, *_cli(*args, f"output.dir={tmp_path / 'two'}", "distribution=mpi_data_parallel")
    )
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


COMPARE = r"""
import json, sys
import numpy as np
from mpi4py import MPI
import ptyframe.runner
from ptyframe.callbacks.base import Callback

data, out = sys.argv[1], sys.argv[2]
engines = {
    "epie": {"name": "epie", "epochs": 6, "alpha": 0.5, "center_probe": False},
    "autodiff": {"name": "autodiff", "epochs": 3, "minibatch": 12,
                 "optimizers": {"object": {"name": "adam", "lr": 0.02}}},
}
res = {}
for en, eng in engines.items():
    for dn in ("mpi_data_parallel", "mpi_distributed_object", "hdf5_object"):
        cfg = {"data": {"name": "file", "path": data}, "engine": eng, "progress": False,
               "distribution": {"name": dn}, "dtype": "complex128"}
        held = {}
        class Rows(Callback):
            def on_prepared(self, run):  # the rows this rank's state holds
                dist = run.distribution
                held["rows"] = [0, int(run.state.object.shape[-2])] if dist.layout() is None \
                    else dist.layout()[dist.rank]
        win = ptyframe.runner.run(cfg, write=False, callbacks=[Rows()])  # windows
        rows = MPI.COMM_WORLD.allgather(list(held["rows"]))
        if dn != "mpi_data_parallel":  # replicas, every reduction via the mode
            cfg["distribution"] = {"name": dn, "windows": False, "min_routed_elements": 0}
        rep = ptyframe.runner.run(cfg, write=False)
        if MPI.COMM_WORLD.rank == 0:
            res[f"{en}/{dn}"] = {
                "windows": win.state.object.numpy().tolist(),
                "replicated": rep.state.object.numpy().tolist(),
                "err": list(win.history.columns["data_error"]),
                "rows": rows,
                "ny": int(win.state.object.shape[-2]),
            }
if MPI.COMM_WORLD.rank == 0:
    for v in res.values():
        for k in ("windows", "replicated"):
            a = np.asarray(v[k])
            v[k] = [a.real.tolist(), a.imag.tolist()]
    with open(out, "w") as f:
        json.dump(res, f)
"""


def test_object_modes_equal_data_parallel_for_pie_and_autodiff(tmp_path, data):
    script = tmp_path / "compare.py"
    script.write_text(COMPARE)
    res = _mpiexec(2, sys.executable, script, data, tmp_path / "out.json")
    assert res.returncode == 0, res.stderr
    out = json.loads((tmp_path / "out.json").read_text())

    def obj(entry, key):
        re, im = entry[key]
        return np.asarray(re) + 1j * np.asarray(im)

    for engine in ("epie", "autodiff"):
        ref = out[f"{engine}/mpi_data_parallel"]
        base = obj(ref, "windows")
        assert np.allclose(obj(ref, "replicated"), base, rtol=0, atol=1e-12)
        assert ref["err"][-1] < ref["err"][0]  # the run does something
        assert ref["rows"] == [[0, ref["ny"]]] * 2  # data-parallel holds the whole object
        for mode in ("mpi_distributed_object", "hdf5_object"):
            e = out[f"{engine}/{mode}"]
            scale = np.abs(base).max()
            assert np.abs(obj(e, "windows") - base).max() < 1e-12 * scale, (engine, mode)
            assert np.abs(obj(e, "replicated") - base).max() < 1e-12 * scale, (engine, mode)
            assert np.allclose(e["err"], ref["err"], rtol=1e-12)
            (a0, b0), (a1, b1) = e["rows"]
            # each rank holds a window: together they cover the object, each well short of it
            assert a0 == 0 and b1 == e["ny"] and a1 <= b0
            assert max(b0 - a0, b1 - a1) < 0.8 * e["ny"]


def test_object_modes_run_from_the_command_line(tmp_path, data):
    res = _mpiexec(
        2,
        *_cli(
            "-m",
            f"data.path={data}",
            "output.images=false",
            "metrics.every=0",
            "engine=epie",
            "engine.epochs=15",
            "engine.alpha=0.5",
            "engine.center_probe=false",  # windows: centring would roll the whole object
            "output.checkpoint_every=4",  # windows are gathered for each checkpoint
            "distribution=mpi_data_parallel,mpi_distributed_object,hdf5_object_in_output",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    # the runner split the object: rank 0 logged the rows it holds, well short of all rows
    held = re.findall(
        r"mpi_distributed_object: rank 0 holds object rows \[0, (\d+)\) of (\d+)",
        res.stdout + res.stderr,
    )
    assert held and int(held[0][0]) < 0.8 * int(held[0][1]), res.stdout + res.stderr
    objects = []
    modes = ("mpi_data_parallel", "mpi_distributed_object", "hdf5_object")
    for job, mode in enumerate(modes):
        with h5py.File(tmp_path / "sweep" / str(job) / "recon.h5") as f:
            err = f["history/data_error"][()]
            objects.append(f["object"][()])
            assert f"name: {mode}" in f.attrs["config"]
        assert len(err) == 15 and err[-1] < 0.5 * err[0]
        assert not (tmp_path / "sweep" / str(job) / "checkpoint.h5").exists()  # removed at end
    # the object modes reduce like data-parallel, so all three agree (complex64)
    for other in objects[1:]:
        assert np.abs(other - objects[0]).max() < 1e-5 * np.abs(objects[0]).max()
    # the HDF5 files went under the run's output directory and were removed at exit
    assert not any((tmp_path / "sweep" / "2" / "hdf5_object").iterdir())


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
        "       'distribution': {'name': 'hdf5_object'}, 'progress': False}\n"
        "ptyframe.runner.run(cfg, write=False)\n"
    )
    t0 = time.time()
    res = _mpiexec(2, sys.executable, script, limit=120)
    elapsed = time.time() - t0
    assert res.returncode not in (0, 124), res.stderr  # 124 = timeout: a hang
    assert "rank 1 of 2 failed" in res.stderr and "probe file not found" in res.stderr
    assert elapsed < 60


def test_the_mpi_tier_hook_turns_a_one_rank_failure_into_an_abort(tmp_path):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_hang.py").write_text(
        "from mpi4py import MPI\n"
        "def test_fails_on_rank_1_while_rank_0_waits():\n"
        "    assert MPI.COMM_WORLD.Get_rank() == 0\n"
        "    MPI.COMM_WORLD.Barrier()  # rank 1 never arrives: without the hook, a hang\n"
    )
    t0 = time.time()
    res = _mpiexec(
        2, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tmp_path, limit=60
    )
    assert res.returncode not in (0, 124), res.stdout + res.stderr
    assert "aborting all ranks" in res.stderr
    assert time.time() - t0 < 45


KILLED_ENGINES = {
    "epie": ["engine=epie", "engine.epochs=300", "engine.alpha=0.5", "engine.center_probe=false"],
    "autodiff": ["engine=autodiff", "engine.epochs=150", "engine.minibatch=16"],
}


@pytest.mark.parametrize("engine", list(KILLED_ENGINES))
def test_a_killed_windowed_run_resumes_from_its_checkpoint_bit_for_bit(tmp_path, engine):
    """SIGKILL of a 2-rank distributed-object run, then resume=true: same final object.

    Checkpoints gather the windows on rank 0 (whole object) and every rank's engine state
    (autodiff: the Adam moments of its window); resume localizes them again.
    """
    data = tmp_path / "d.h5"
    write_plain(data, m=64, n=8, step=12.0)
    args = [
        f"data.path={data}", *KILLED_ENGINES[engine], "distribution=mpi_distributed_object",
        "output.images=false", "metrics.every=0", "output.checkpoint_every=20",
        "dtype=complex128",
    ]  # fmt: skip
    ref = _mpiexec(2, *_cli(*args, f"output.dir={tmp_path / 'ref'}"))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "run"
    cmd = ["timeout", "240", MPIEXEC, "-n", "2", *_cli(*args, f"output.dir={out}")]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, start_new_session=True
    )
    deadline = time.time() + 200
    while not (out / "checkpoint.h5").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    os.killpg(proc.pid, 9)  # the launcher and both ranks, mid-run
    proc.wait()
    assert (out / "checkpoint.h5").exists() and not (out / "recon.h5").exists()
    one = subprocess.run(  # another rank count cannot take the windows' engine states
        _cli(*args, f"output.dir={out}", "resume=true"), capture_output=True, text=True, env=ENV
    )
    assert one.returncode == 2 and "written on object windows by 2 ranks" in one.stderr
    again = _mpiexec(2, *_cli(*args, f"output.dir={out}", "resume=true"))
    assert again.returncode == 0, again.stderr
    with h5py.File(tmp_path / "ref" / "recon.h5") as a, h5py.File(out / "recon.h5") as b:
        assert np.array_equal(a["object"][()], b["object"][()])
        assert np.array_equal(a["probe"][()], b["probe"][()])
        assert len(b["history/data_error"]) == len(a["history/data_error"])


def test_ranks_started_a_second_apart_share_one_hydra_run_directory(tmp_path, data):
    """Hydra names the run directory from the clock; rank 1 starts 1.2 s after rank 0."""
    cli = " ".join(
        _cli(f"data.path={data}", "engine.epochs=2", "output.images=false",
             "distribution=mpi_data_parallel")
    )  # fmt: skip
    script = tmp_path / "late.sh"
    script.write_text(f'[ "$PMI_RANK" = 1 ] && sleep 1.2\nexec {cli}\n')
    res = _mpiexec(2, "sh", script, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    runs = [p for p in (tmp_path / "outputs").glob("*/*") if p.is_dir()]
    assert len(runs) == 1, runs  # one directory: rank 0's timestamp
    assert (runs[0] / "recon.h5").exists() and (runs[0] / ".hydra").is_dir()


def test_sigterm_stops_every_rank_at_one_epoch_and_saves_the_whole_object(tmp_path):
    """A batch system's SIGTERM to mpiexec: ranks agree on an epoch, gather, save; resume.

    The windows are gathered (collectively) after the ranks agreed to stop, so the saved
    result holds the whole object, and resuming ends where the uninterrupted run ends.
    """
    data = tmp_path / "d.h5"
    write_plain(data, m=64, n=8, step=12.0)
    args = [
        f"data.path={data}", "engine=epie", "engine.epochs=600", "engine.alpha=0.5",
        "engine.center_probe=false", "distribution=mpi_distributed_object",
        "output.images=false", "metrics.every=0", "output.checkpoint_every=50",
        "dtype=complex128",
    ]  # fmt: skip
    ref = _mpiexec(2, *_cli(*args, f"output.dir={tmp_path / 'ref'}"))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [MPIEXEC, "-n", "2", *_cli(*args, f"output.dir={out}")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    deadline = time.time() + 200
    while not (out / "checkpoint.h5").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(15)  # to mpiexec only, as a batch system does
    log, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err  # 128 + SIGTERM, as a shell reports it
    assert "stopping after this epoch" in log + err
    with h5py.File(out / "recon.h5") as f, h5py.File(tmp_path / "ref" / "recon.h5") as r:
        assert f.attrs["status"] == "interrupted"
        done = int(f.attrs["epochs_done"])
        assert f["object"].shape == r["object"].shape  # the whole object, gathered
    assert 50 <= done < 600
    with h5py.File(out / "checkpoint.h5") as f:
        assert int(f.attrs["next_epoch"]) == done
    # rank 0 alone records the stop in the shared cli.log, with the files and the resume command
    said = [x for x in (out / "cli.log").read_text().splitlines() if "interrupted at epoch" in x]
    assert len(said) == 1 and f"interrupted at epoch {done} of 600" in said[0], said
    assert str((out / "recon.h5").resolve()) in said[0] and "resume=true (launched on 2" in said[0]
    again = _mpiexec(2, *_cli(*args, f"output.dir={out}", "resume=true"))
    assert again.returncode == 0, again.stderr
    with h5py.File(tmp_path / "ref" / "recon.h5") as a, h5py.File(out / "recon.h5") as b:
        assert np.array_equal(a["object"][()], b["object"][()])
