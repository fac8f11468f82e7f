"""Detector preprocessing from the config: mask, dark, saturation, crop and binning."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ptyframe.data.preprocess import orient, pattern_centre
from ptyframe.plugins import default_registry
from ptyframe.registry import BuildContext

from foreign_h5 import write_foreign
from synth import make_dataset


@pytest.fixture(scope="module")
def case():
    return make_dataset(m=32, n=5, step=6.0, photons=1e5, seed=4)


def _open(path, **options):
    reg = default_registry()
    return reg.build("dataset", {"name": "file", "path": str(path), **options}, BuildContext(reg))


def test_mask_from_npy_from_the_file_and_the_cxi_mask(tmp_path, case):
    bad = np.zeros((32, 32), dtype=bool)
    bad[3, 4] = bad[20, 7] = True
    np.save(tmp_path / "bad.npy", bad)

    def with_masks(parts):
        cxi = np.zeros((32, 32), dtype=np.uint32)
        cxi[10, 11] = 1  # bad
        cxi[12, 13] = 0x1000  # "signal above background": good
        parts["entry_1/instrument_1/detector_1/mask"] = cxi
        parts["extra/bad"] = bad.astype(np.uint8)

    path = write_foreign(tmp_path / "scan.cxi", case, "cxi", mutate=with_masks)
    plain = _open(path).intensities(0)
    assert (plain[:, 10, 11] == -1).all() and (plain[:, 12, 13] >= 0).all()
    for spec in (str(tmp_path / "bad.npy"), "/extra/bad", f"{path}:/extra/bad"):
        frames = _open(path, mask=spec).intensities(0)
        assert (frames[:, 3, 4] == -1).all() and (frames[:, 20, 7] == -1).all(), spec
        assert (frames[:, 10, 11] == -1).all()
        assert int((frames < 0).sum()) == 3 * case.n_tiles
        keep = frames >= 0
        np.testing.assert_array_equal(frames[keep], case.intensities(0)[keep])


def test_dark_subtraction_and_saturation(tmp_path, case):
    raw = case.intensities(0) + 5.0
    np.save(tmp_path / "dark.npy", np.full((3, 32, 32), 5.0, dtype=np.float32))  # a stack
    path = write_foreign(tmp_path / "scan.cxi", case, "cxi", frames=raw)
    ds = _open(path, dark=str(tmp_path / "dark.npy"))
    np.testing.assert_allclose(ds.intensities(0), case.intensities(0), atol=1e-4)
    level = float(np.percentile(raw, 99.9))
    sat = _open(path, saturation=level).intensities(0)
    assert ((sat == -1) == (raw >= level)).all() and (raw >= level).sum() > 0


def test_crop_finds_the_pattern_centre_and_doubles_the_pixel(tmp_path, case):
    original = write_foreign(tmp_path / "centred.cxi", case, "cxi")
    shifted = np.roll(case.intensities(0), (3, -2), axis=(-2, -1))
    moved = write_foreign(tmp_path / "moved.cxi", case, "cxi", frames=shifted)
    c0 = pattern_centre(case.intensities(0).mean(0))
    c1 = pattern_centre(shifted.mean(0))
    assert (c1[0] - c0[0], c1[1] - c0[1]) == (3, -2)
    a, b = _open(original, crop=16), _open(moved, crop=16)
    np.testing.assert_array_equal(a.intensities(0), b.intensities(0))
    assert b.conventions["pattern_centre_px"] == [c1[0], c1[1]]
    y0, x0 = c0[0] - 8, c0[1] - 8
    np.testing.assert_array_equal(
        a.intensities(0), case.intensities(0)[:, y0 : y0 + 16, x0 : x0 + 16]
    )
    full = _open(original)
    assert a.geometry.pixel_size_m == pytest.approx(2 * full.geometry.pixel_size_m, rel=1e-9)
    # the window centres stay where they were on the object
    c_full = (full.geometry.positions_px + 16) * full.geometry.pixel_size_m
    c_crop = (a.geometry.positions_px + 8) * a.geometry.pixel_size_m
    d = c_full - c_crop
    np.testing.assert_allclose(d, d[:1].repeat(len(d), 0), atol=1e-12)


def test_binning_sums_blocks_and_keeps_the_pixel(tmp_path, case):
    path = write_foreign(tmp_path / "scan.cxi", case, "cxi")
    full, binned = _open(path), _open(path, bin=2)
    assert binned.window == (16, 16)
    assert binned.geometry.pixel_size_m == pytest.approx(full.geometry.pixel_size_m, rel=1e-9)
    ref = case.intensities(0).reshape(-1, 16, 2, 16, 2).sum(axis=(2, 4))
    np.testing.assert_allclose(binned.intensities(0), ref, rtol=1e-6)
    assert binned.conventions["bin"] == 2


def test_non_square_frames_need_a_crop(tmp_path, case):
    wide = np.concatenate([case.intensities(0), np.zeros((case.n_tiles, 32, 8), "f4")], -1)
    path = write_foreign(tmp_path / "wide.cxi", case, "cxi", frames=wide)
    from ptyframe.errors import DataValidationError

    with pytest.raises(DataValidationError, match="set data.crop=N"):
        _open(path)
    assert _open(path, crop=32).window == (32, 32)


def test_mask_follows_the_orientation(tmp_path, case):
    bad = np.zeros((32, 32), dtype=bool)
    bad[2, 9] = True
    np.save(tmp_path / "bad.npy", bad)
    path = write_foreign(tmp_path / "scan.cxi", case, "cxi")
    ds = _open(path, mask=str(tmp_path / "bad.npy"), orientation="4")
    assert (ds.intensities(0)[:, 9, 2] == -1).all()
    with h5py.File(path) as f:
        assert f["entry_1/instrument_1/detector_1/data"].shape == (25, 32, 32)
    assert (orient(bad, 4)[9, 2]) and ds.conventions["masked_pixels"] == 1
