"""What a new user meets first: config mistakes, resume, run directories, file modes, logs.

Each mistake test would catch a spelling that Hydra lets through (``+engine.alpah=`` ran with
the default alpha) or that ends in Hydra's multi-line report with exit code 1; the resume
tests would catch a fingerprint that depends on how the directory was named; the hint test
runs every command line that ``ptyframe plugins`` prints.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from ptyframe import cli
from ptyframe.progress import Progress

from plain_h5 import write_plain


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("first") / "d.h5"
    write_plain(path, m=64, n=8, step=12.0)
    return path


MISTAKES = [
    # (override, what the one line must say)
    ("engine.alpah=0.3", "did you mean alpha?"),
    ("+engine.alpah=0.3", "did you mean alpha?"),
    ("++engine.alpah=0.3", "did you mean alpha?"),
    ("alpah=0.3", "has no field 'alpah'"),
    ("+alpah=0.3", "has no field 'alpah'"),
    ("engine=epei", "did you mean epie?"),
    ("engine.alpha=abc", "engine.alpha=abc"),
    ("engine.alpha=7", "out of range"),
    ("+experiment=lowdos", "did you mean lowdose?"),
    ("engine=[a", "cannot read the override"),
    ("output.checkpont_every=3", "did you mean checkpoint_every?"),
    ("regularizers.tv.weight=1", "+regularizer@regularizers.tv="),
]


@pytest.mark.parametrize(("override", "says"), MISTAKES)
def test_every_config_mistake_is_one_line_and_exit_2(override, says, data, tmp_path, capsys):
    os.chdir(tmp_path)
    rc = cli.main(["reconstruct", f"data.path={data}", "engine.epochs=1", override])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("ptyframe: error:"), err
    assert says in err[0]
    assert not any(tmp_path.iterdir()), "a failed run left files behind"


def test_a_sweep_with_a_wrong_option_fails_before_any_job(data, tmp_path, capsys):
    os.chdir(tmp_path)
    rc = cli.main(["reconstruct", "-m", f"data.path={data}", "engine=epie,rpei"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "did you mean rpie?" in err[0]
    assert not (tmp_path / "multirun").exists()


def test_a_run_that_fails_before_its_first_epoch_leaves_no_directory(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "ptyframe.cli", "reconstruct", "data.path=missing.h5"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == [lines[0]] and "no such file" in lines[0]
    assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())


def test_every_hint_printed_by_ptyframe_plugins_composes():
    from ptyframe.overrides import check_overrides, group_options
    from ptyframe.plugins import build_registry, config_searchpaths, make_plugin_manager
    from ptyframe.registry import CHOOSE, KINDS
    from ptyframe.runner import typed_config

    pm, infos = make_plugin_manager()
    registry = build_registry(pm, infos)
    cli._setup_hydra(registry, config_searchpaths(pm))
    tried = 0
    for kind in registry.kinds():
        command, template, _ = CHOOSE[kind]
        names = registry.names(kind)
        presets = [p for p in group_options(KINDS[kind]) if p not in names] if names else []
        for name in [*names, *presets]:
            ovs = template.format(name=name).split()
            takes_path = kind == "dataset" and "path" in {
                f[0] for f in registry.get(kind, name).fields()
            }
            if command == "reconstruct" and (
                takes_path or not any(o.startswith("data=") for o in ovs)
            ):
                ovs.append("data.path=x.h5")
            if command == "simulate":
                ovs.append("out=x.h5")
            check_overrides(command, ovs, typed_config if command == "reconstruct" else None)
            tried += 1
    for group in ("experiment",):
        for name in group_options(group):
            check_overrides("reconstruct", [f"+{group}={name}"], typed_config)
            tried += 1
    assert tried > 30


def _cmd(data, *extra):
    return [
        sys.executable,
        "-m",
        "ptyframe.cli",
        "reconstruct",
        f"data.path={data}",
        "engine=epie",
        "engine.epochs=40",
        "engine.alpha=0.5",
        "output.checkpoint_every=0",
        "metrics.every=0",
        "output.images=false",
        *extra,
    ]


def _interrupt(cmd, out, cwd):
    """Start ``cmd``, Ctrl-C it once it has logged a few epochs; return the epoch reached."""
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.time() + 240
    seen = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        if "epoch " in line and "data error" in line:
            seen = int(line.split("epoch ")[1].split("/")[0])
            if seen >= 3:
                proc.send_signal(signal.SIGINT)
                break
        if time.time() > deadline:
            break
    proc.communicate(timeout=120)
    assert proc.returncode == 130, f"not interrupted (rc {proc.returncode})"
    return seen


@pytest.mark.parametrize("spelling", ["output.dir", "hydra.run.dir"])
def test_ctrl_c_then_resume_by_either_spelling_is_bit_identical(spelling, data, tmp_path):
    ref = subprocess.run(
        _cmd(data, "output.dir=ref", "progress=false"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "run"
    seen = _interrupt(_cmd(data, f"{spelling}={run}", "progress_every_s=0"), run, tmp_path)
    with h5py.File(run / "recon.h5") as f:
        assert f.attrs["status"] == "interrupted"
    res = subprocess.run(
        _cmd(data, f"{spelling}={run}", "resume=true", "progress=false"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "resuming from" in res.stdout + res.stderr
    with h5py.File(run / "recon.h5") as a, h5py.File(tmp_path / "ref" / "recon.h5") as b:
        assert a.attrs["status"] == "finished"
        assert np.array_equal(a["object"][()], b["object"][()])
        assert np.array_equal(a["probe"][()], b["probe"][()])
        assert np.array_equal(a["history/data_error"][()], b["history/data_error"][()])
    log = (run / "cli.log").read_text()
    # appended, not overwritten: the interrupted launch's lines come first
    assert log.index("epoch 1/40") < log.index(f"resuming from {run / 'checkpoint.h5'}: epoch")
    assert seen >= 3
    assert (run / ".hydra" / "overrides.yaml").exists()
    assert any(p.name.startswith("resumed-") for p in (run / ".hydra").iterdir())
    assert not (tmp_path / "outputs").exists()


def test_outputs_follow_the_umask(data, tmp_path):
    env = {**os.environ}
    res = subprocess.run(
        ["sh", "-c", "umask 022 && exec " + " ".join(_cmd(data, "output.dir=run"))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "run" / "recon.h5").stat().st_mode & 0o777 == 0o644
    from ptyframe.io.atomic import atomic_path

    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "x.bin").stat().st_mode & 0o777 == 0o640


def test_progress_in_a_log_is_plain_lines(caplog):
    stream = io.StringIO()  # not a terminal
    caplog.set_level(logging.INFO, logger="ptyframe")
    bar = Progress(100, 0, enabled=True, interval_s=3600.0, stream=stream)
    for _ in range(100):
        bar.update(0.25)
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert stream.getvalue() == ""  # no carriage-return bar
    assert len(lines) == 2  # the first epoch and the last (the interval is an hour)
    assert lines[0].startswith("epoch 1/100  data error 0.25")
    assert lines[-1].startswith("epoch 100/100")
    caplog.clear()
    quiet = Progress(10, 0, enabled=False, stream=stream)
    for _ in range(10):
        quiet.update(0.1)
    assert not caplog.records
