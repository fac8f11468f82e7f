"""RAAR plugin: converges on noiseless data, validates its config, works from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))
from ptyframe_raar.raar import RaarConfig, RaarEngine  # noqa: E402

from ptyframe.data.measurements import Measurements  # noqa: E402
from ptyframe.errors import ConfigError  # noqa: E402
from ptyframe.initial import InitConfig, initial_state  # noqa: E402

from plain_h5 import write_plain  # noqa: E402
from synth import aligned_nrmse, illumination, make_dataset  # noqa: E402


@pytest.mark.parametrize("beta,limit", [(0.75, 0.06), (1.0, 0.02)])
def test_known_probe_raar_and_dm_converge(beta, limit):
    """With the probe known, RAAR and DM (beta = 1) recover the object from noiseless data.

    Blind runs from the disk probe converge slowly (NRMSE ~0.25-0.35 after 150 iterations on
    this case); see the plugin README.
    """
    torch.set_num_threads(1)
    ds = make_dataset(m=32, n=7, step=6.0, jitter=0.0)
    meas = Measurements.from_dataset(ds)
    state = initial_state(InitConfig(probe="truth"), ds, meas)
    eng = RaarEngine(RaarConfig(epochs=60, beta=beta, fix_probe=True, center_probe=False))
    eng.prepare(meas, state)
    reports = list(eng.iterate())
    assert reports[-1].data_error < 0.6 * reports[0].data_error
    illum = illumination(ds)
    err = aligned_nrmse(state.object[0].numpy(), ds.truth.object[0], illum > 0.1 * illum.max())
    assert err < limit, err


def test_config_ranges():
    with pytest.raises(ConfigError, match="raar.beta"):
        RaarConfig(beta=1.5)
    with pytest.raises(ConfigError, match="raar.rho"):
        RaarConfig(rho=0.5)


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
