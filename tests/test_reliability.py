"""Interrupted and failing runs: SIGKILL then resume is bit-exact; divergence keeps the last
good state; Ctrl-C saves the current state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import ptyframe
import ptyframe.runner
from ptyframe.engines.backend import fftw_available
from ptyframe.errors import ConfigError, DivergenceError

from plain_h5 import write_plain
from signalled import reconstruct_cmd, run_and_signal


def _cmd(data, out, *extra):
    return reconstruct_cmd(
        data, 30, "output.checkpoint_every=2", f"output.dir={out}", "progress=false", *extra
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("rel") / "d.h5"
    write_plain(path, m=64, n=8, step=12.0)
    return path


def test_sigkill_then_resume_is_bit_exact(tmp_path, data):
    """Would catch: a resume from the last checkpoint that differs in the last bits from the
    uninterrupted run (FFT plans chosen by timing in each process, a state not saved)."""
    ref = subprocess.run(_cmd(data, tmp_path / "ref"), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "run"
    proc = subprocess.Popen(_cmd(data, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = out / "checkpoint.h5"
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            try:
                with h5py.File(ckpt) as f:
                    nxt = int(f.attrs["next_epoch"])
            except OSError:
                nxt = 0
            if nxt >= 4:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = nxt
                break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed"
    assert not (out / "recon.h5").exists()
    res = subprocess.run(
        _cmd(data, out, "resume=true"), capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    with h5py.File(out / "recon.h5") as a, h5py.File(tmp_path / "ref" / "recon.h5") as b:
        # FFTW's plans where pyFFTW is installed (test_determinism.py), else torch.fft
        assert (
            a.attrs["engine_fft"]
            == b.attrs["engine_fft"]
            == ("fftw" if fftw_available() else "torch")
        )
        assert np.array_equal(a["object"][()], b["object"][()])
        assert np.array_equal(a["probe"][()], b["probe"][()])
        assert len(a["history/data_error"]) == 30
        assert np.array_equal(a["history/data_error"][()], b["history/data_error"][()])
    assert not (out / "checkpoint.h5").exists()


def test_resume_with_other_settings_is_refused(tmp_path, data):
    out = tmp_path / "run"
    proc = subprocess.run(
        _cmd(data, out, "engine.epochs=3", "output.checkpoint_every=1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0
    # finished runs remove their checkpoint: resuming says there is nothing to resume
    res = subprocess.run(
        _cmd(data, out, "resume=true"), capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 2 and "no checkpoint to resume from" in res.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_saves_the_current_state(tmp_path, data, sig):
    """Ctrl-C, or the SIGTERM a batch system sends at the time limit: the state is saved.

    The signal goes out once the run has logged its second epoch (inside the loop, handlers
    installed), however long a loaded machine takes to get there.
    """
    out = tmp_path / "run"
    cmd = _cmd(data, out, "engine.epochs=100000", "output.checkpoint_every=0")
    cmd = [c for c in cmd if c != "progress=false"] + ["progress_every_s=0"]
    res = run_and_signal(cmd, sig, at_epoch=2)
    assert res.returncode == 128 + sig, res.output  # 130 for Ctrl-C, 143 for SIGTERM
    assert "interrupted" in res.output
    with h5py.File(out / "recon.h5") as f:
        assert f.attrs["status"] == "interrupted"
        done = int(f.attrs["epochs_done"])
    assert res.epoch_at_signal <= done < 100000
    with h5py.File(out / "checkpoint.h5") as f:
        assert int(f.attrs["next_epoch"]) == done


def test_divergence_stops_with_the_last_good_state_saved(tmp_path, data):
    out = tmp_path / "run"
    with pytest.raises(DivergenceError) as info:
        ptyframe.reconstruct(
            data,
            {
                "name": "autodiff",
                "epochs": 20,
                "minibatch": 16,
                "optimizers": {"object": {"name": "gd", "lr": 1e9}, "probe": None},
            },
            out_dir=out,
        )
    assert "last good state" in str(info.value)
    with h5py.File(out / "recon.h5") as f:
        assert f.attrs["status"] == "diverged"
        obj = f["object"][()]
        n_good = int(f.attrs["epochs_done"])
    assert np.isfinite(obj).all()
    assert n_good < 20


def test_resume_refuses_a_different_config(tmp_path, data):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _cmd(data, out, "engine.epochs=400"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (out / "checkpoint.h5").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    with pytest.raises(ConfigError, match="different config"):
        ptyframe.runner.run(
            {
                "data": {"name": "file", "path": str(data)},
                "engine": {"name": "epie", "epochs": 400, "alpha": 0.9},
                "resume": True,
                "progress": False,
                "output": {"dir": str(out)},
            },
        )


def test_skip_done_does_not_redo_a_finished_run(tmp_path, data):
    out = tmp_path / "run"
    first = subprocess.run(
        _cmd(data, out, "engine.epochs=3"), capture_output=True, text=True, timeout=300
    )
    assert first.returncode == 0, first.stderr
    stamp = (out / "recon.h5").stat().st_mtime_ns
    again = subprocess.run(
        _cmd(data, out, "engine.epochs=3", "output.skip_done=true"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert (out / "recon.h5").stat().st_mtime_ns == stamp
    other = subprocess.run(
        _cmd(data, out, "engine.epochs=4", "output.skip_done=true"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert other.returncode == 2 and "already exists" in other.stderr


def test_a_diverging_job_does_not_stop_a_sweep_and_is_not_redone(tmp_path, data):
    """A sweep over step sizes: the diverging point is recorded, the other jobs still run."""
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "ptyframe.cli", "reconstruct", "-m", f"data.path={data}",
        "engine=autodiff", "engine.epochs=6", "engine.minibatch=16",
        "+optimizer@engine.optimizers.object=gd", "engine.optimizers.object.lr=1e9,0.01",
        "output.images=false", "metrics.every=0",
        "output.skip_done=true", f"hydra.sweep.dir={sweep}", "progress=false",
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "diverged, recorded in" in res.stderr
    with h5py.File(sweep / "0" / "recon.h5") as f:
        assert f.attrs["status"] == "diverged"
    with h5py.File(sweep / "1" / "recon.h5") as f:  # the job after it ran to the end
        assert f.attrs["status"] == "finished" and int(f.attrs["epochs_done"]) == 6
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("skipping") + again.stdout.count("skipping") == 2


def _kill_at_checkpoint(cmd: list[str], ckpt, at: int = 4) -> int | None:
    """Start ``cmd``; SIGKILL it once ``ckpt`` says epoch ``at`` is next; return that epoch."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, killed_at = time.time() + 240, None
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            try:
                with h5py.File(ckpt) as f:
                    nxt = int(f.attrs["next_epoch"])
            except OSError:
                nxt = 0
            if nxt >= at:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = nxt
                break
        time.sleep(0.05)
    proc.wait(timeout=60)
    return killed_at


@pytest.mark.slow
def test_sigkill_mid_stream_then_resume_is_bit_exact(tmp_path, data):
    """``data.stream=true`` in blocks of 10 (the 64 patterns in 7 blocks, read from the file
    while the engine runs, amplitudes formed by the feed's thread): killed with SIGKILL,
    then ``resume=true``, the run ends with the bits of an uninterrupted streamed run, which
    are the bits of an in-memory run visiting the same blocks (a resume with another block
    size is refused: ``test_streamed_engines``).

    Would catch: a resumed stream that restarts the visiting order, the prefetch or feed
    thread out of step after the restart, or streamed bits that differ from in-memory ones
    (the runner's sources, starting probe and error normaliser included).
    """
    stream = ("data.stream=true", "data.block_patterns=10")
    ref = subprocess.run(
        _cmd(data, tmp_path / "ref", *stream), capture_output=True, text=True, timeout=300
    )
    assert ref.returncode == 0, ref.stderr
    mem = subprocess.run(
        _cmd(data, tmp_path / "mem", "data.stream=false", "data.block_patterns=10"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert mem.returncode == 0, mem.stderr
    out = tmp_path / "run"
    killed_at = _kill_at_checkpoint(_cmd(data, out, *stream), out / "checkpoint.h5")
    assert killed_at is not None, "the run finished before it could be killed"
    assert not (out / "recon.h5").exists()
    res = subprocess.run(
        _cmd(data, out, "resume=true", *stream), capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    with h5py.File(out / "recon.h5") as a, h5py.File(tmp_path / "ref" / "recon.h5") as b:
        assert bool(a.attrs["patterns_streamed"]) and int(a.attrs["stream_block_patterns"]) == 10
        for key in ("object", "probe", "history/data_error"):
            assert np.array_equal(a[key][()], b[key][()]), key
        with h5py.File(tmp_path / "mem" / "recon.h5") as c:
            assert not bool(c.attrs["patterns_streamed"])
            for key in ("object", "probe", "history/data_error"):
                assert np.array_equal(a[key][()], c[key][()]), key
