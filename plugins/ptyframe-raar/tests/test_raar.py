"""RAAR plugin: converges on noiseless data, validates its config, works from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import torch
from ptyframe_raar.raar import RaarConfig, RaarEngine

from ptyframe.data.measurements import Measurements
from ptyframe.errors import ConfigError
from ptyframe.initial import InitConfig, initial_state

from plain_h5 import write_plain
from synth import aligned_nrmse, illumination, make_dataset

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("beta,limit", [(0.9, 0.04), (1.0, 0.04)])
def test_blind_raar_and_dm_converge_on_noiseless_data(beta, limit):
    """Blind (object and probe from a disk and vacuum) RAAR and DM on a jittered raster.

    Would catch a projection or a step that keeps them from the truth: both must reach an
    NRMSE below ``limit`` in 150 iterations, as ePIE does on the same case.
    """
    ds = make_dataset(m=32, n=7, step=6.0, jitter=1.0)
    meas = Measurements.from_dataset(ds)
    state = initial_state(InitConfig(), ds, meas)
    eng = RaarEngine(RaarConfig(epochs=150, beta=beta))
    eng.prepare(meas, state)
    reports = list(eng.iterate())
    assert reports[-1].data_error < 0.1 * reports[0].data_error
    illum = illumination(ds)
    err = aligned_nrmse(state.object[0].numpy(), ds.truth.object[0], illum > 0.1 * illum.max())
    assert err < limit, err


def test_known_probe_converges():
    """With the true probe fixed, the overlap projection is exact and RAAR recovers O."""
    ds = make_dataset(m=32, n=7, step=6.0, jitter=1.0)
    meas = Measurements.from_dataset(ds)
    state = initial_state(InitConfig(probe="truth"), ds, meas)
    eng = RaarEngine(RaarConfig(epochs=60, beta=0.9, fix_probe=True, center_probe=False))
    eng.prepare(meas, state)
    reports = list(eng.iterate())
    assert reports[-1].data_error < 0.05 * reports[0].data_error
    illum = illumination(ds)
    err = aligned_nrmse(state.object[0].numpy(), ds.truth.object[0], illum > 0.1 * illum.max())
    assert err < 0.01, err


def test_denoising_step_is_applied_inside_the_overlap_projection():
    """rho > 0 calls the prior once per epoch on the object (a counting stand-in denoiser)."""
    from ptyframe.engines.prior import DenoiseStep, DenoiseStepConfig

    calls = []

    def shrink(obj):
        calls.append(obj.shape)
        return obj * 0.5

    ds = make_dataset(m=32, n=5, step=6.0, jitter=1.0)
    meas = Measurements.from_dataset(ds)
    runs = {}
    for rho in (0.0, 0.3):
        state = initial_state(InitConfig(), ds, meas)
        prior = DenoiseStep(DenoiseStepConfig(rho=rho), shrink if rho else None)
        eng = RaarEngine(RaarConfig(epochs=3, rho=rho), prior if rho else None)
        eng.prepare(meas, state)
        list(eng.iterate())
        runs[rho] = state.object.clone()
    assert len(calls) == 3 and calls[0] == runs[0.3].shape
    assert not torch.allclose(runs[0.0], runs[0.3])


def test_config_ranges():
    with pytest.raises(ConfigError, match="raar.beta"):
        RaarConfig(beta=1.5)
    with pytest.raises(ConfigError, match="raar.rho"):
        RaarConfig(rho=0.5)
    with pytest.raises(ConfigError, match="raar.overlap_iterations"):
        RaarConfig(overlap_iterations=0)
    with pytest.raises(ConfigError, match="raar.inertia"):
        RaarConfig(inertia=0.0)


def test_selectable_from_the_command_line_with_the_dm_preset(tmp_path):
    write_plain(tmp_path / "d.h5")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "ptyframe.cli",
            "reconstruct",
            "data.path=d.h5",
            "engine=dm",
            "engine.epochs=5",
            "engine.rho=0.3",
            "output.dir=run",
            "progress=false",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ},
    )
    assert res.returncode == 0, res.stderr
    with h5py.File(tmp_path / "run" / "recon.h5") as f:
        cfg = f.attrs["config"]
        assert "name: raar" in cfg and "beta: 1.0" in cfg and "rho: 0.3" in cfg
        err = f["history/data_error"][()]
    assert len(err) == 5 and all(e == e for e in err)
