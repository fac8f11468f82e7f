"""The ``ptyframe`` command: simulate, reconstruct, multirun, presets and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import pytest
import yaml

from plain_h5 import write_plain


def _cli(args, cwd, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "ptyframe.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ},
    )


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    path = d / "d.h5"
    write_plain(path)
    return path


def test_simulate_then_reconstruct_writes_every_output(tmp_path):
    res = _cli(
        [
            "simulate",
            "out=sim.h5",
            "simulation.window_px=32",
            "scan.n_y=5",
            "scan.n_x=5",
            "simulation.photons_per_pattern=1e5",
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "sim.h5").exists() and (tmp_path / "sim.png").stat().st_size > 5000
    assert not (tmp_path / "cli.log").exists()
    with h5py.File(tmp_path / "sim.h5") as f:
        assert f["exchange/data"].shape == (1, 25, 32, 32) and "truth/object" in f
    res = _cli(
        [
            "reconstruct",
            "data.path=sim.h5",
            "engine=rpie",
            "engine.alpha=0.15",
            "engine.beta=5",
            "engine.epochs=6",
            "metrics.every=3",
            "output.dir=run",
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "epoch 6/6  data error" in res.stdout  # plain progress lines (not a terminal)
    run = tmp_path / "run"
    for name in (
        "recon.h5",
        "config.yaml",
        "object_amplitude.png",
        "object_phase.png",
        "probe.png",
        "convergence.png",
        "metrics.png",
        "frc.png",
    ):
        assert (run / name).stat().st_size > 200, name
    with h5py.File(run / "recon.h5") as f:
        hist = {k: f["history"][k][()] for k in f["history"]}
        assert len(hist["data_error"]) == 6 and hist["data_error"][-1] < hist["data_error"][0]
        assert sum(v == v for v in hist["frc_half_nyquist"]) == 2  # epochs 3 and 6
        assert "alpha: 0.15" in f.attrs["config"] and "torch" in f.attrs["versions"]
        assert f.attrs["seed"] == 0


def test_multirun_runs_every_combination(tmp_path, small_file):
    res = _cli(
        [
            "reconstruct",
            "-m",
            f"data.path={small_file}",
            "engine=epie,rpie",
            "engine.alpha=0.1,0.3",
            "engine.epochs=2",
            "progress=false",
            "hydra.sweep.dir=sweep",
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    results = sorted((tmp_path / "sweep").glob("*/recon.h5"))
    assert len(results) == 4
    engines = [yaml.safe_load(h5py.File(p).attrs["config"])["engine"] for p in results]
    configs = {(e["name"], e["alpha"]) for e in engines}  # the engine block of each run
    assert len(configs) == 4


def test_preset_extends_a_registered_config(tmp_path, small_file):
    res = _cli(
        [
            "reconstruct",
            f"data.path={small_file}",
            "engine=rpie_lowdose",
            "engine.epochs=1",
            "output.dir=run",
            "progress=false",
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    cfg = (tmp_path / "run" / "config.yaml").read_text()
    assert "name: rpie" in cfg and "alpha: 0.15" in cfg and "beta: 5.0" in cfg


@pytest.mark.parametrize(
    "args,message",
    [
        (["engine=epei"], "engine=epei: no such engine (did you mean epie?)"),
        (["engine.alpah=0.3"], "alpah"),
        (["engine.alpha=7"], "epie.alpha = 7.0 is out of range"),
        (["init.probe=gauss"], "init.probe = 'gauss' is unknown"),
        (["tyop=1"], "tyop"),
    ],
)
def test_bad_overrides_fail_before_work_with_a_clear_error(tmp_path, small_file, args, message):
    res = _cli(["reconstruct", f"data.path={small_file}", "output.dir=run", *args], tmp_path)
    assert res.returncode == 2
    assert message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()


def test_corrupt_file_is_one_line_with_exit_code_2(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    res = _cli(["reconstruct", f"data.path={bad}", "output.dir=run"], tmp_path)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot be read as HDF5" in lines[0]
    assert not (tmp_path / "run").exists()


def test_missing_data_path_and_unknown_command(tmp_path):
    res = _cli(["reconstruct"], tmp_path)
    assert res.returncode == 2 and "data.path is required: give `data.path=...`" in res.stderr
    res = _cli(["reconstrut"], tmp_path)
    assert res.returncode == 2 and "reconstruct" in res.stderr


def test_plugins_command_lists_components_providers_and_fields(tmp_path):
    res = _cli(["plugins"], tmp_path)
    assert res.returncode == 0
    out = res.stdout
    assert "engine  (choose with: ptyframe reconstruct engine=<name>)" in out
    assert (
        "presets (engine=<preset>): autodiff_multislice, autodiff_nearfield, dm, epie_lowdose"
        in out
    )
    assert "[from ptyframe.engines (ptyframe" in out
    assert "alpha: float = 0.25" in out  # ePIE's default step
