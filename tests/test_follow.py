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
