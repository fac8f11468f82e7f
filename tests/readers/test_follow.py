"""Follow a growing SWMR file: arrivals, torn and shrinking files, timeouts (data.follow)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ptyframe.data.exchange import write_dataset
from ptyframe.data.follow import GrowingScan, open_followed
from ptyframe.errors import ConfigError, DataValidationError
from ptyframe.simulation.stream import append, create

from synth import make_dataset


@pytest.fixture()
def source(tmp_path):
    ds = make_dataset(m=16, n=4, step=4.0, jitter=0.5, seed=2)
    path = tmp_path / "src.h5"
    write_dataset(path, ds.intensities(0)[None], ds.geometry, truth=ds.truth)
    return path, ds


def _writer(tmp_path, source):
    path, ds = source
    out = tmp_path / "live.h5"
    create(out, path, ds.window)
    f = h5py.File(out, "a", libver="latest")
    f.swmr_mode = True
    return out, f, ds


def test_poll_sees_appends_waits_for_torn_ones_and_completion(tmp_path, source):
    out, f, ds = _writer(tmp_path, source)
    pats, pos = ds.intensities(0), ds.geometry.positions_px
    scan = GrowingScan(out, timeout_s=2.0)
    assert scan.poll().n == 0 and not scan.poll().complete
    append(f, pats[:5], pos[:5])
    assert scan.poll().n == 5
    d = f["exchange/data"]  # a torn append: data grown, positions not yet
    d.resize((1, 9, 16, 16))
    d[0, 5:9] = pats[5:9]
    d.flush()
    torn = scan.poll()
    assert torn.n == 5 and torn.torn
    p = f["metadata/probe_pos_px"]
    p.resize((9, 2))
    p[5:9] = pos[5:9]
    p.flush()
    assert scan.poll().n == 9 and not scan.poll().torn
    got, got_pos = scan.read(5, 9)
    np.testing.assert_array_equal(got, pats[5:9])
    np.testing.assert_array_equal(got_pos, pos[5:9])
    append(f, pats[9:], pos[9:])
    f.attrs["scan_complete"] = True
    f.flush()
    end = scan.poll()
    assert end.n == 16 and end.complete
    f.close()


def test_growing_dataset_extends_with_the_file(tmp_path, source):
    out, f, ds = _writer(tmp_path, source)
    pats, pos = ds.intensities(0), ds.geometry.positions_px
    append(f, pats[:3], pos[:3])
    grown = open_followed(out, timeout_s=2.0)
    assert grown.n_tiles == 3 and grown.geometry.object_shape == ds.geometry.object_shape
    assert grown.has_truth
    append(f, pats[3:10], pos[3:10])
    assert grown.extend(grown.scan.poll().n) == (3, 10)
    np.testing.assert_array_equal(grown.intensities(0), pats[:10])
    np.testing.assert_array_equal(grown.geometry.positions_px, pos[:10])
    f.close()


def test_a_shrinking_file_is_an_error(tmp_path, source):
    out, f, ds = _writer(tmp_path, source)
    append(f, ds.intensities(0)[:6], ds.geometry.positions_px[:6])
    scan = GrowingScan(out, timeout_s=2.0)
    assert scan.poll().n == 6
    f["exchange/data"].resize((1, 2, 16, 16))
    f["exchange/data"].flush()
    with pytest.raises(DataValidationError, match="shrank from 6 to 2"):
        scan.poll()
    f.close()


def test_no_file_and_no_pattern_time_out_with_a_clear_message(tmp_path, source):
    with pytest.raises(DataValidationError, match="follow_timeout_s"):
        GrowingScan(tmp_path / "never.h5", timeout_s=0.3)
    out, f, _ = _writer(tmp_path, source)
    with pytest.raises(DataValidationError, match="no pattern arrived within 0.3 s"):
        open_followed(out, timeout_s=0.3)
    f.close()


def test_follow_refuses_the_detector_options_it_cannot_apply(tmp_path, source):
    from ptyframe.plugins import default_registry
    from ptyframe.registry import BuildContext

    out, f, ds = _writer(tmp_path, source)
    append(f, ds.intensities(0)[:4], ds.geometry.positions_px[:4])
    reg = default_registry()
    cfg = {"name": "file", "path": str(out), "follow": True, "follow_timeout_s": 2, "bin": 2}
    with pytest.raises(ConfigError, match="data.bin cannot be applied"):
        reg.build("dataset", cfg, BuildContext(reg, "cpu", "complex64", 0))
    f.close()


def test_screen_masks_nan_pixels_and_skips_tiles_it_cannot_place_or_use():
    """NaN/Inf pixels -> unmeasured; no measured pixel or a position off the object -> skipped.

    Would catch: a NaN reaching the engine, a tile kept at a position the object cannot hold,
    or skipped tiles named by their index in the chunk instead of in the file.
    """
    from ptyframe.data.follow import screen

    rng = np.random.default_rng(0)
    data = rng.poisson(5.0, (6, 8, 8)).astype(np.float32)
    pos = np.array([[0, 0], [4, 4], [2, 2], [np.nan, 1], [13, 0], [8, 8]], dtype=np.float64)
    data[1, 0, :3] = [np.nan, np.inf, -np.inf]
    data[2] = np.nan  # no measured pixel left
    got = screen(data, pos, start=40, object_shape=(16, 16))
    assert got.masked_px == 3 + 64
    assert sorted(got.skipped) == [42, 43, 44]
    assert "no measured pixel" in got.skipped[42]
    assert "not finite" in got.skipped[43]
    assert "outside the object frame 16x16" in got.skipped[44]
    np.testing.assert_array_equal(got.positions_px, pos[[0, 1, 5]])
    assert np.isfinite(got.data).all()
    np.testing.assert_array_equal(got.data[1, 0, :3], [-1.0, -1.0, -1.0])
    np.testing.assert_array_equal(got.data[1, 0, 3:], data[1, 0, 3:])


def test_bad_tiles_arriving_are_skipped_and_counted_in_the_file_index(tmp_path, source, caplog):
    out, f, ds = _writer(tmp_path, source)
    pats, pos = ds.intensities(0).copy(), ds.geometry.positions_px.copy()
    pats[1] = -1.0  # a frame with no measured pixel, in the first read
    pats[6, 2, 2] = np.nan  # one NaN pixel: masked, the tile kept
    pos[7] = [-3.0, 1.0]  # off the object, in a later append
    append(f, pats[:4], pos[:4])
    grown = open_followed(out, timeout_s=2.0)
    assert grown.n_tiles == 3 and grown.next_tile == 4
    append(f, pats[4:10], pos[4:10])
    with caplog.at_level("WARNING", logger="ptyframe"):
        assert grown.extend(grown.scan.poll().n) == (3, 8)
    assert sorted(grown.skipped) == [1, 7]
    assert "tile 7 of" in caplog.text and "1 NaN/Inf pixels" in caplog.text
    keep = [0, 2, 3, 4, 5, 6, 8, 9]
    np.testing.assert_array_equal(grown.geometry.positions_px, pos[keep])
    assert np.isfinite(grown.intensities(0)).all() and grown.intensities(0)[5, 2, 2] == -1
    f.close()


def test_patterns_that_change_size_or_positions_of_the_wrong_shape_are_named(tmp_path, source):
    path, ds = source
    out = tmp_path / "live.h5"
    with h5py.File(out, "w", libver="latest") as g:  # a hand-written file: frames may grow
        g.create_dataset(
            "exchange/data", (1, 0, 16, 16), maxshape=(1, None, None, None), dtype="f4"
        )
        g.create_dataset("metadata/probe_pos_px", (0, 2), maxshape=(None, None), dtype="f8")
        g["metadata/object_shape_px"] = np.asarray(ds.geometry.object_shape)
        g["metadata/energy_ev"], g["metadata/psize_cm"] = 8000.0, 1e-6
        g.attrs["scan_complete"] = False
    f = h5py.File(out, "a", libver="latest")
    f.swmr_mode = True
    append(f, ds.intensities(0)[:4], ds.geometry.positions_px[:4])
    scan = GrowingScan(out, timeout_s=2.0)
    assert scan.poll().n == 4
    d = f["exchange/data"]
    d.resize((1, 6, 32, 32))
    d.flush()
    with pytest.raises(DataValidationError, match="from tile 4 on, /exchange/data has the shape"):
        scan.poll()
    d.resize((1, 6, 16, 16))
    d.flush()
    p = f["metadata/probe_pos_px"]
    p.resize((6, 3))
    p.flush()
    with pytest.raises(DataValidationError, match=r"probe_pos_px is \(6, 3\).*must be \[n, 2\]"):
        scan.poll()
    f.close()
