"""An interrupted run is recorded in its cli.log: status, epoch reached, files, resume command.

Also: a signal that lands inside a log call waits until the record is written to every
handler (console and file), so no line the run printed is missing from ``cli.log``.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from ptyframe.callbacks.base import Callback
from ptyframe.callbacks.signals import (
    INTERRUPTION_ATTR,
    AgreedStop,
    Interruption,
    Signalled,
    SignalsCallback,
    StopRequest,
    exit_code,
    interruption_of,
)
from ptyframe.cli import interrupted_message
from ptyframe.loop import run_loop

from plain_h5 import write_plain
from signalled import reconstruct_cmd, run_and_signal


class _Record(logging.Handler):
    def __init__(self, got: list[str], sig: int | None = None) -> None:
        super().__init__()
        self.got, self.sig = got, sig

    def emit(self, record: logging.LogRecord) -> None:
        if self.sig is not None:  # the signal arrives while this record is being written
            os.kill(os.getpid(), self.sig)
        self.got.append(record.getMessage())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_inside_a_log_call_waits_until_every_handler_has_the_record(sig) -> None:
    """Would catch: KeyboardInterrupt raised between the console and the file handler."""
    console: list[str] = []
    logfile: list[str] = []
    lg = logging.getLogger("ptyframe.test_interrupt_log")
    lg.propagate = False
    lg.setLevel(logging.INFO)  # whatever an earlier test left on the "ptyframe" logger
    handlers = [_Record(console, sig), _Record(logfile)]
    for h in handlers:
        lg.addHandler(h)
    stop = StopRequest(agreed=False)
    try:
        lg.warning("epoch 3/40  data error 0.1")  # no KeyboardInterrupt out of here
        assert console == logfile == ["epoch 3/40  data error 0.1"]
        assert stop.deferred == sig
        with pytest.raises(KeyboardInterrupt, match=f"signal {int(sig)}"):
            stop.check(None)  # the next epoch end stops the run
    finally:
        stop.uninstall()
        for h in handlers:
            lg.removeHandler(h)


def test_a_signal_outside_logging_stops_at_once_and_an_ignored_sigint_stays_ignored() -> None:
    stop = StopRequest(agreed=False)
    try:
        with pytest.raises(KeyboardInterrupt, match=f"signal {int(signal.SIGINT)}"):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10**6):  # the handler runs at the next bytecode
                pass
        assert stop.deferred == 0
    finally:
        stop.uninstall()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stop = StopRequest(agreed=False)
        assert signal.SIGINT not in stop.previous  # a background job's SIGINT: still ignored
        stop.uninstall()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_exit_code_is_128_plus_the_signal_that_stopped_the_run(tmp_path) -> None:
    """Would catch: SIGTERM reported as 130 (Ctrl-C's code), or the code lost on the way from
    the handler through the saved ``Interruption`` to the console script."""
    assert exit_code(KeyboardInterrupt()) == 130  # Python's own Ctrl-C: no handler of ours
    assert exit_code(Signalled(signal.SIGINT)) == 130
    assert exit_code(Signalled(signal.SIGTERM)) == 143
    assert exit_code(AgreedStop(signal.SIGTERM, "stop requested")) == 143
    exc = KeyboardInterrupt()
    info = Interruption(7, 40, tmp_path, True, True, signum=int(signal.SIGTERM))
    setattr(exc, INTERRUPTION_ATTR, info)
    assert exit_code(exc) == 143
    try:  # a second Ctrl-C while the SIGTERM's state is saved: the first signal's code
        try:
            raise Signalled(signal.SIGTERM)
        except Signalled:
            raise Signalled(signal.SIGINT) from None
    except Signalled as second:
        assert exit_code(second) == 143


def test_the_message_names_what_was_saved_and_how_to_go_on(tmp_path) -> None:
    for name in ("recon.h5", "checkpoint.h5"):
        (tmp_path / name).write_bytes(b"")
    exc = KeyboardInterrupt()
    setattr(exc, INTERRUPTION_ATTR, Interruption(7, 40, tmp_path, saves=True, resumable=True))
    argv = ["data.path=d.h5", "engine=epie", f"output.dir={tmp_path}"]
    msg = interrupted_message(exc, "reconstruct", argv)
    assert msg.startswith("interrupted at epoch 7 of 40 (status interrupted)")
    assert f"{tmp_path / 'recon.h5'}, {tmp_path / 'checkpoint.h5'}" in msg
    cmd = shlex.split(msg.split("continue with: ", 1)[1])
    assert cmd == ["ptyframe", "reconstruct", *argv[:2], f"output.dir={tmp_path}", "resume=true"]
    setattr(exc, INTERRUPTION_ATTR, Interruption(7, 40, tmp_path, saves=True, resumable=False))
    assert "cannot be resumed" in interrupted_message(exc, "reconstruct", argv)
    setattr(exc, INTERRUPTION_ATTR, Interruption(7, 40, tmp_path, True, True, ranks=2))
    assert interrupted_message(exc, "reconstruct", argv).endswith(
        "resume=true (launched on 2 MPI ranks, as before)"
    )
    setattr(exc, INTERRUPTION_ATTR, Interruption(7, 40, tmp_path, saves=False, resumable=True))
    assert interrupted_message(exc, "reconstruct", argv).endswith("nothing saved by this process")
    assert "nothing saved" in interrupted_message(KeyboardInterrupt(), "simulate", [])
    (tmp_path / "recon.h5").unlink()  # a second Ctrl-C stopped the write of recon.h5
    setattr(exc, INTERRUPTION_ATTR, Interruption(7, 40, tmp_path, saves=True, resumable=True))
    try:
        try:
            raise exc
        except KeyboardInterrupt:
            raise KeyboardInterrupt("signal 2") from None
    except KeyboardInterrupt as second:
        msg = interrupted_message(second, "reconstruct", argv)
    assert msg.startswith("interrupted at epoch 7 of 40") and "recon.h5" not in msg
    assert f"saved in {tmp_path / 'checkpoint.h5'}; continue with: ptyframe" in msg


def test_a_run_on_a_growing_file_is_marked_not_resumable_whatever_its_config_says(tmp_path):
    """Resumable is decided by the dataset (as FollowCallback decides following), not a flag."""
    from types import SimpleNamespace

    from ptyframe.data.follow import GrowingDataset

    dist = SimpleNamespace(size=1, is_root=True)
    seen = []
    for dataset in (object.__new__(GrowingDataset), object()):
        run = SimpleNamespace(
            writer=True,
            distribution=dist,
            windowed=False,
            dataset=dataset,
            history=SimpleNamespace(epochs=[0, 1, 2]),
            end_epoch=9,
            out_dir=tmp_path,
            cfg=SimpleNamespace(data=SimpleNamespace(follow=False)),
        )
        exc = KeyboardInterrupt()
        SignalsCallback().on_exception(run, exc)
        info = interruption_of(exc)
        assert info is not None and (info.epochs_done, info.epochs) == (3, 9)
        seen.append(info.resumable)
    assert seen == [False, True]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("intr") / "d.h5"
    write_plain(path, m=64, n=8, step=12.0)
    return path


def _cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return reconstruct_cmd(data, 60, "output.checkpoint_every=0", f"output.dir={out}", *extra)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_is_recorded_in_cli_log_and_its_resume_command_works(
    tmp_path, data, sig
) -> None:
    """Signal after epoch 2: cli.log ends with the interruption and holds every epoch line.

    Would catch: the message only on stderr (not in cli.log), a log line cut off by the
    signal, a wrong epoch or file in the message, or a resume command that does not run.
    """
    out = tmp_path / "run"
    res = run_and_signal(_cmd(data, out, "progress_every_s=0"), sig, at_epoch=2)
    assert res.returncode == 128 + sig, res.output  # 130 for Ctrl-C, 143 for SIGTERM
    with h5py.File(out / "recon.h5") as f:
        assert f.attrs["status"] == "interrupted"
        done = int(f.attrs["epochs_done"])
    assert 2 <= res.epoch_at_signal <= done < 60  # stopped mid-run: resume has work to do
    log = (out / "cli.log").read_text()
    last = log.strip().splitlines()[-1]
    assert f"interrupted at epoch {done} of 60 (status interrupted)" in last
    assert f"{(out / 'recon.h5').resolve()}, {(out / 'checkpoint.h5').resolve()}" in last
    printed = re.findall(r"epoch (\d+)/60\s+data error", res.output)
    assert printed and all(f"epoch {k}/60 " in log for k in printed)  # no line cut off
    cmd = shlex.split(last.split("continue with: ", 1)[1])
    assert cmd[:2] == ["ptyframe", "reconstruct"] and cmd[-1] == "resume=true"
    resumed = subprocess.run(
        [sys.executable, "-m", "ptyframe.cli", *cmd[1:], "progress=false"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    with h5py.File(out / "recon.h5") as f:
        assert f.attrs["status"] == "finished" and int(f.attrs["epochs_done"]) == 60
    assert f"resuming from {out / 'checkpoint.h5'}: epoch {done}" in (out / "cli.log").read_text()


class _Saver(Callback):
    """A slow save in ``on_run_end`` (order 90) that a second Ctrl-C hits half-way."""

    order = 90

    def __init__(self) -> None:
        self.done: list[str] = []

    def on_run_end(self, run, status) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C again
        for _ in range(10**5):  # the handler runs here, at some bytecode of the save
            pass
        self.done.append(status)


@pytest.mark.parametrize("stop_at", [1, None], ids=["interrupted", "finished"])
def test_a_signal_while_the_end_is_saved_is_held_until_it_is_written(tmp_path, stop_at) -> None:
    """Would catch: a second Ctrl-C (or one right after the last epoch) stopping the save."""
    from test_callbacks import make_run

    def hook(epoch):
        if epoch == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)

    run = make_run([0.5, 0.4, 0.3], tmp_path, hook=hook)
    sig, saver = SignalsCallback(), _Saver()
    sig.setup(run)
    if stop_at is None:
        run_loop(run, [sig, saver])
    else:
        with pytest.raises(KeyboardInterrupt) as info:
            run_loop(run, [sig, saver])
        assert interruption_of(info.value) is not None  # the first stop's, not the held one
    assert saver.done == [run.status] == ["interrupted" if stop_at else "finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
