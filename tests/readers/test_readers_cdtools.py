"""Files written by cdtools-py's own CXI writer (test tier: needs ``make readers-peers``).

cdtools-py runs in a venv of its own (``.venv-cdtools``); the test writes a scan with
``Ptycho2DDataset.to_cxi``, asks cdtools where it puts each probe window, and checks that
ptyframe reads the same patterns, object pixel and positions (up to a whole-pixel origin).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ptyframe.plugins import default_registry
from ptyframe.registry import BuildContext

from synth import make_dataset

ROOT = Path(__file__).resolve().parents[2]
CDTOOLS = ROOT / ".venv-cdtools" / "bin" / "python"
WRITER = ROOT / "benchmarks" / "readers" / "cdtools_write_cxi.py"

# `make test` builds the venv; under CI a missing one is a failure, not a skip
pytestmark = pytest.mark.skipif(
    not CDTOOLS.exists() and os.environ.get("CI") != "true",
    reason="cdtools venv missing: run `make readers-peers`",
)


def test_cdtools_cxi_file_reads_as_cdtools_reads_it(tmp_path):
    ds = make_dataset(m=32, n=6, step=6.0, jitter=0.7, seed=3)
    g = ds.geometry
    npz = tmp_path / "scan.npz"
    np.savez(
        npz,
        patterns=ds.intensities(0),
        positions_px=g.positions_px,
        pixel_size_m=g.pixel_size_m,
        wavelength_m=g.wavelength_m,
        pitch_m=75e-6,
    )
    cxi, pix = tmp_path / "scan.cxi", tmp_path / "pix.npy"
    subprocess.run([str(CDTOOLS), str(WRITER), str(npz), str(cxi), str(pix)], check=True)
    reg = default_registry()
    read = reg.build("dataset", {"name": "file", "path": str(cxi)}, BuildContext(reg))
    assert read.conventions["reader"] == "cxi"
    np.testing.assert_array_equal(read.intensities(0), ds.intensities(0))
    # cdtools stores distance and wavelength as float32
    assert read.geometry.pixel_size_m == pytest.approx(g.pixel_size_m, rel=1e-6)
    theirs = np.load(pix)  # where cdtools itself puts the windows, in object pixels
    ours = read.geometry.positions_px
    d = theirs - ours
    np.testing.assert_allclose(d, np.round(d[:1]).repeat(len(d), 0), atol=1e-4)
    np.testing.assert_allclose(theirs, g.positions_px, atol=1e-4)
