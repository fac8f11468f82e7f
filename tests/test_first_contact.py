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
import subprocess
import sys

import h5py
import numpy as np
import pytest

from ptyframe import cli
from ptyframe.engines.backend import fftw_available
from ptyframe.progress import Progress

from plain_h5 import write_plain
from signalled import reconstruct_cmd, run_and_signal


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
    ("callbacks=erly_stop", "did you mean early_stop?"),
    ("+callback@callbacks.p=progress", "always-on callbacks"),
    ("callbacks.stop.patience=3", "+callback@callbacks.stop="),
    ("engine=epie physics=multislice", "physics=multislice is not used by engine epie"),
    # fields of the dict-typed groups, however the entry got there
    ("+callback@callbacks.stop=early_stop callbacks.stop.patiense=3", "did you mean patience?"),
    ("+callback@callbacks.stop=early_stop +callbacks.stop.patiense=3", "did you mean patience?"),
    ("callbacks=early_stop callbacks.early_stop.patiense=3", "did you mean patience?"),
    ("callbacks=early_stop +callbacks.early_stop.patiense=3", "did you mean patience?"),
    ("+regularizer@regularizers.tv=tv regularizers.tv.wieght=1", "did you mean weight?"),
    ("+regularizer@regularizers.tv=tv ++regularizers.tv.wieght=1", "did you mean weight?"),
    ("+regularizers.tv={name:tv,weight:1} regularizers.tv.wieght=1", "did you mean weight?"),
    ("engine=autodiff +regularizers.tv={name:tv,wieght:1}", "did you mean weight?"),
    ("callbacks=early_stop callbacks.erly_stop.patience=3", "did you mean early_stop? or add"),
    ("+regularizer@regularizers.tv=tv regularizers.tvv.weight=1", "did you mean tv? or add"),
    # follow mode reads patterns as they arrive: none can be held out yet
    ("data.follow=true data.validation_fraction=0.1", "set data.validation_fraction=0"),
]


@pytest.mark.parametrize(("override", "says"), MISTAKES)
def test_every_config_mistake_is_one_line_and_exit_2(override, says, data, tmp_path, capsys):
    os.chdir(tmp_path)
    rc = cli.main(["reconstruct", f"data.path={data}", "engine.epochs=1", *override.split()])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("ptyframe: error:"), err
    assert says in err[0]
    assert not any(tmp_path.iterdir()), "a failed run left files behind"


#: ``ptyframe halfset`` takes ``reconstruct``'s overrides: the same mistakes, the same line
HALFSET_MISTAKES = [
    ("engine.alpah=0.3", "did you mean alpha?"),
    ("+engine.alpah=0.3", "did you mean alpha?"),
    ("engine=epei", "did you mean epie?"),
    ("+experiment=lowdos", "did you mean lowdose?"),
    ("engine.alpha=abc", "engine.alpha"),
    ("engine.alpha=-1", "out of range"),
    ("engine=epie physics=multislice", "physics"),
]


@pytest.mark.parametrize(("override", "says"), HALFSET_MISTAKES)
def test_halfset_checks_its_overrides_like_reconstruct(override, says, data, tmp_path, capsys):
    """Would catch: halfset handing a typo to Hydra (a traceback, exit 1) or dropping a
    ``+`` key silently (``+engine.alpah`` ran with the default alpha), or writing its
    output directory before the check."""
    os.chdir(tmp_path)
    argv = ["halfset", f"data.path={data}", "engine.epochs=1", *override.split()]
    rc = cli.main([*argv, "--out", str(tmp_path / "hs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("ptyframe: error:"), err
    assert says in err[0]
    assert not any(tmp_path.iterdir()), "a failed halfset left files behind"


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
    cli.setup_hydra(registry, config_searchpaths(pm))
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
    return reconstruct_cmd(data, 40, "output.checkpoint_every=0", *extra)


@pytest.mark.parametrize("spelling", ["output.dir", "hydra.run.dir"])
def test_ctrl_c_then_resume_by_either_spelling_is_bit_identical(spelling, data, tmp_path):
    """Would catch: a resume that differs in the last bits from the uninterrupted run (FFT
    plans chosen by timing in each process, an RNG state not restored), or a fingerprint
    that depends on how the directory was named."""
    ref = subprocess.run(
        _cmd(data, "output.dir=ref", "progress=false"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "run"
    # Ctrl-C once epoch 2 is logged (epoch 1's line is then surely in cli.log too; a signal
    # right after a line reaches the pipe can stop the log call before the file gets it);
    # the other 38 epochs are the margin for a slow reader
    cmd = _cmd(data, f"{spelling}={run}", "progress_every_s=0")
    hit = run_and_signal(cmd, at_epoch=2, cwd=tmp_path)
    assert hit.returncode == 130, f"not interrupted (rc {hit.returncode}):\n{hit.output}"
    with h5py.File(run / "recon.h5") as f:
        assert f.attrs["status"] == "interrupted"
        done = int(f.attrs["epochs_done"])
    assert 2 <= hit.epoch_at_signal <= done < 40  # stopped mid-run: resume has work to do
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
        # FFTW's plans where pyFFTW is installed (test_determinism.py), else torch.fft
        assert (
            a.attrs["engine_fft"]
            == b.attrs["engine_fft"]
            == ("fftw" if fftw_available() else "torch")
        )
        assert np.array_equal(a["object"][()], b["object"][()])
        assert np.array_equal(a["probe"][()], b["probe"][()])
        assert np.array_equal(a["history/data_error"][()], b["history/data_error"][()])
    log = (run / "cli.log").read_text()
    # appended, not overwritten: the interrupted launch's lines come first
    assert log.index("epoch 1/40") < log.index(f"resuming from {run / 'checkpoint.h5'}: epoch")
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


def test_phase_maps_are_cyclic_only_when_the_phase_wraps():
    from ptyframe.io.images import phase_view

    yy, xx = np.mgrid[0:64, 0:64]
    spokes = np.where(np.sin(8 * np.arctan2(yy - 32, xx - 32)) > 0, -0.8, 0.0)  # a star
    narrow = phase_view(spokes)
    assert narrow["kw"]["cmap"] != "twilight_shifted"  # -0.8 and 0 must look different
    assert narrow["kw"]["vmin"] <= -0.79 and narrow["kw"]["vmax"] >= -0.01
    ramp = np.angle(np.exp(1j * 0.4 * xx))  # wraps several times
    assert phase_view(ramp)["kw"]["cmap"] == "twilight_shifted"


def test_still_improving_flags_a_falling_misfit_only():
    from ptyframe.progress import still_improving

    falling = 0.1 * np.exp(-np.arange(100) / 30.0) + 0.05
    flat = np.r_[np.linspace(0.2, 0.06, 50), np.full(50, 0.06)]
    assert still_improving(falling) is not None and still_improving(falling) > 0.01
    assert still_improving(flat) is None


def test_every_picture_has_colour_bars_and_physical_axes(tmp_path):
    from ptyframe.io import images

    rng = np.random.default_rng(0)
    obj = np.exp(1j * 0.3 * rng.standard_normal((80, 80)))
    probe = np.exp(-((np.mgrid[-16:16, -16:16] ** 2).sum(0)) / 50.0)[None].astype(complex)
    illum = np.zeros((80, 80))
    illum[10:70, 12:68] = 1.0
    paths = images.object_images(obj, tmp_path, 20e-9, illum)
    paths.append(images.probe_image(probe, tmp_path, 20e-9))
    pos = np.array([[0.0, 0.0], [10.0, 10.0]])
    paths.append(images.truth_preview(obj, probe[0], pos, 20e-9, tmp_path / "t.png"))
    f = np.linspace(0, 2.5e7, 41)
    paths.append(
        images.frc_image(f, 1 - f / 2.5e7, np.full(41, 0.2), 2.5e7, tmp_path, resolution_m=52e-9)
    )
    import matplotlib.image as mpimg

    for p in paths:
        img = mpimg.imread(p)
        assert img.shape[0] > 300 and img.shape[1] > 400, p  # room for bars and axis labels
