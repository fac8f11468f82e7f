"""Data-exchange files: a file written with plain h5py reconstructs with no conversion."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

import ptyframe
from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.exchange import write_dataset
from ptyframe.data.measurements import Measurements

from plain_h5 import write_plain
from synth import aligned_nrmse, make_dataset


def test_plain_h5py_file_reconstructs_without_conversion(tmp_path):
    path = tmp_path / "external.h5"
    truth = write_plain(path, m=32, n=7, step=6.0)
    result = ptyframe.reconstruct(path, "epie", epochs=150, out_dir=tmp_path / "run")
    assert result.status == "finished"
    assert result.history.columns["data_error"][-1] < 0.02
    illum = np.zeros(result.object.shape[-2:])
    pos = np.floor(h5py.File(path)["metadata/probe_pos_px"][()]).astype(int)
    for y, x in pos:
        illum[y : y + 32, x : x + 32] += np.abs(truth["probe"][0]) ** 2
    err = aligned_nrmse(result.object[0], truth["object"][0], illum > 0.1 * illum.max())
    assert err < 0.05, err
    with h5py.File(tmp_path / "run" / "recon.h5") as f:
        assert f["object"].shape == (1, *illum.shape) and f["object"].dtype.kind == "c"
        assert f["probe"].shape == (1, 32, 32)
        assert f["history/data_error"].shape == (150,)
        assert "epie" in f.attrs["config"] and f.attrs["status"] == "finished"
    for name in ("object_amplitude.png", "object_phase.png", "probe.png", "convergence.png"):
        assert (tmp_path / "run" / name).stat().st_size > 5000


def test_magnitude_files_and_negative_pixels_are_read_as_documented(tmp_path):
    path = tmp_path / "mag.h5"

    def to_magnitude(parts):
        data = np.sqrt(parts["exchange/data"])
        data[..., 0, 0] = -1.0  # unmeasured
        parts["exchange/data"] = data
        parts["attrs:exchange/data@quantity"] = "magnitude"

    write_plain(path, to_magnitude)
    ds = PtychoDataset.open(path)
    inten = ds.intensities(0)
    assert ds.quantity == "magnitude" and np.all(inten[..., 0, 0] == -1)
    with h5py.File(path) as f:
        ref = f["exchange/data"][0, :, 3, 5] ** 2
    assert np.allclose(inten[:, 3, 5], ref)
    meas = Measurements.from_dataset(ds)
    centre = meas.valid is not None and not bool(meas.valid[:, 8, 8].any())
    assert centre  # centred [0, 0] -> FFT order [M/2, M/2]


def test_write_then_open_round_trip(tmp_path):
    ds = make_dataset(m=16, n=3, step=5.0)
    write_dataset(tmp_path / "a.h5", ds.intensities(0)[None], ds.geometry, truth=ds.truth)
    back = PtychoDataset.open(tmp_path / "a.h5")
    assert back.shape == (1, 9, 16, 16) and back.has_truth
    assert np.array_equal(back.intensities(0), ds.intensities(0))
    assert np.allclose(back.geometry.positions_px, ds.geometry.positions_px)
    assert back.geometry.pixel_size_m == pytest.approx(20e-9)
    sub = back.intensities(0, [2, 5])
    assert np.array_equal(sub, ds.intensities(0)[[2, 5]])
    with pytest.raises(ptyframe.errors.OutputExistsError):
        write_dataset(tmp_path / "a.h5", ds.intensities(0)[None], ds.geometry)


def test_subpixel_positions_model_the_data(tmp_path):
    # data simulated with fractional positions: the engine must use them (sub-pixel probe)
    ds = make_dataset(m=16, n=4, step=4.0, jitter=0.7)
    assert np.any(ds.geometry.positions_px % 1 != 0)
    meas = Measurements.from_dataset(ds, dtype=torch.float64)
    assert meas.n == 16
