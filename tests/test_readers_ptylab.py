"""Files of PtyLab 0.3.7's own making, and PtyLab reading ours (test tier: ``make readers-peers``).

PtyLab runs in a venv of its own (``.venv-ptylab``). Its simulation writer
(``PtyLab.io.generateSimulationData.generate_simu_hdf5``: 100 Fermat positions, 128 x 128
frames, 632.8 nm) makes a file; PtyLab's ``Reconstruction`` says where it puts each window
(rounded to whole pixels) and its object pixel ``dxo``; ptyframe must read the same.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptyframe.plugins import default_registry
from ptyframe.registry import BuildContext

from foreign_h5 import write_foreign
from synth import make_dataset

ROOT = Path(__file__).resolve().parents[1]
PTYLAB = ROOT / ".venv-ptylab" / "bin" / "python"

# `make test` builds the venv; under CI a missing one is a failure, not a skip
pytestmark = pytest.mark.skipif(
    not PTYLAB.exists() and os.environ.get("CI") != "true",
    reason="PtyLab venv missing: run `make readers-peers`",
)

GENERATE = """
import sys
from pathlib import Path
from PtyLab.io.generateSimulationData import generate_simu_hdf5
generate_simu_hdf5(Path(sys.argv[1]))
"""
GEOMETRY = """
import sys, json
import numpy as np
from PtyLab import ExperimentalData, Params, Reconstruction
exp = ExperimentalData(sys.argv[1], operationMode="CPM")
rec = Reconstruction(exp, Params())
rec.copyAttributesFromExperiment(exp)
rec.computeParameters()
print(json.dumps({"dxo": float(rec.dxo), "positions": np.asarray(rec.positions).tolist(),
                  "frames": int(exp.numFrames), "Nd": int(exp.Nd)}))
"""


def _ptylab(script: str, *args: str) -> dict:
    res = subprocess.run(
        [str(PTYLAB), "-c", script, *args], capture_output=True, text=True, check=True
    )
    lines = res.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def _open(path, **options):
    reg = default_registry()
    return reg.build("dataset", {"name": "file", "path": str(path), **options}, BuildContext(reg))


@pytest.fixture(scope="module")
def ptylab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ptylab") / "simu.hdf5"
    _ptylab(GENERATE, str(path))
    return path, _ptylab(GEOMETRY, str(path))


def test_ptylab_own_file_reads_with_ptylabs_geometry(ptylab_file):
    path, theirs = ptylab_file
    ds = _open(path)
    assert ds.conventions["reader"] == "ptylab"
    assert ds.geometry.pixel_size_m == pytest.approx(theirs["dxo"], rel=1e-9)
    assert ds.window == (theirs["Nd"], theirs["Nd"]) and ds.n_tiles == theirs["frames"]
    d = np.asarray(theirs["positions"], dtype=np.float64) - ds.geometry.positions_px
    # PtyLab rounds each position to whole pixels; ptyframe keeps the sub-pixel part
    assert float(np.ptp(d, axis=0).max()) < 1.0
    with h5py.File(path) as f:
        np.testing.assert_array_equal(ds.intensities(0), f["ptychogram"][()].astype(np.float32))


def test_auto_orientation_keeps_ptylabs_own_file_as_stored(ptylab_file):
    path, _ = ptylab_file
    ds = _open(path, orientation="auto", orientation_epochs=6, orientation_tiles=40)
    assert int(ds.conventions["orientation"].split()[0]) in (0, 3), ds.conventions


def test_ptylab_loads_our_ptylab_layout(tmp_path):
    case = make_dataset(m=32, n=6, step=6.0, jitter=0.7, seed=3)
    path = write_foreign(tmp_path / "ours.h5", case, "ptylab")
    theirs = _ptylab(GEOMETRY, str(path))
    assert theirs["frames"] == case.n_tiles and theirs["Nd"] == 32
    assert theirs["dxo"] == pytest.approx(case.geometry.pixel_size_m, rel=1e-9)
    d = np.asarray(theirs["positions"]) - case.geometry.positions_px
    assert float(np.ptp(d, axis=0).max()) < 1.0
