"""Malformed inputs: each gives one clear error (type and message) and writes nothing.

The table in the README ("What a bad input says") is this list.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ptyframe
from ptyframe.data.dataset import PtychoDataset
from ptyframe.errors import (
    ConfigError,
    DataValidationError,
    OutputExistsError,
    UnknownComponentError,
)

from plain_h5 import write_plain


def _set(key, value):
    def mutate(parts):
        parts[key] = value

    return mutate


def _data(fn):
    def mutate(parts):
        parts["exchange/data"] = fn(parts["exchange/data"].copy())

    return mutate


def _pos(fn):
    def mutate(parts):
        parts["metadata/probe_pos_px"] = fn(parts["metadata/probe_pos_px"].copy())

    return mutate


def _nan_at(a):
    a[0, 2, 3, 3] = np.nan
    return a


def _inf_at(a):
    a[0, 1, 0, 0] = np.inf
    return a


def _empty_pattern(a):
    a[0, 4] = -1.0
    return a


FILE_CASES = [
    ("no /exchange/data", _set("exchange/data", None), "missing dataset /exchange/data"),
    ("3-D data", _data(lambda a: a[0]), "must be 4-D"),
    ("zero tiles", _data(lambda a: a[:, :0]), "is empty"),
    ("non-square patterns", _data(lambda a: a[..., :12]), "not square"),
    ("2x2 patterns", _data(lambda a: a[..., :2, :2]), "too small"),
    ("complex data", _data(lambda a: a.astype(np.complex64)), "dtype complex64"),
    ("bad quantity attribute", _set("attrs:exchange/data@quantity", "photons"), "quantity"),
    ("NaN in data", _data(_nan_at), "NaN/Inf"),
    ("Inf in data", _data(_inf_at), "NaN/Inf"),
    ("pattern with no measured pixel", _data(_empty_pattern), "no measured pixel"),
    ("all-zero data", _data(np.zeros_like), "is zero"),
    ("no positions", _set("metadata/probe_pos_px", None), "missing /metadata/probe_pos_px"),
    ("positions [n, 3]", _pos(lambda p: np.c_[p, p[:, :1]]), "must be [n_tiles, 2]"),
    ("too few positions", _pos(lambda p: p[:-1]), "rows but"),
    (
        "NaN position",
        _pos(lambda p: np.where(np.arange(len(p))[:, None] == 3, np.nan, p)),
        "NaN or Inf",
    ),
    ("negative position", _pos(lambda p: p - 5.0), "outside the object"),
    ("complex positions", _pos(lambda p: p.astype(np.complex128)), "dtype complex128"),
    ("positions in metres", _pos(lambda p: p * 1e5), "unit of probe_pos_px"),
    (
        "object_shape_px too small",
        _set("metadata/object_shape_px", np.array([8, 8])),
        "need an object of at least",
    ),
    (
        "object_shape_px not (ny, nx)",
        _set("metadata/object_shape_px", np.array([8, 8, 8])),
        "is not (ny, nx)",
    ),
    ("no energy", _set("metadata/energy_ev", None), "missing metadata/energy_ev"),
    ("energy in joules", _set("metadata/energy_ev", np.float64(1.3e-15)), "plausible range"),
    ("energy not a number", _set("metadata/energy_ev", np.bytes_(b"8 keV")), "dtype"),
    ("no pixel size", _set("metadata/psize_cm", None), "missing metadata/psize_cm"),
    ("negative pixel size", _set("metadata/psize_cm", np.float64(-2e-6)), "not a positive"),
    ("pixel size array", _set("metadata/psize_cm", np.ones(3)), "must be one number"),
    ("theta of wrong length", _set("metadata/theta", np.zeros(3)), "metadata/theta has 3"),
    ("NaN free_prop_cm", _set("metadata/free_prop_cm", np.array([np.nan])), "free_prop_cm"),
]


@pytest.mark.parametrize("label,mutate,message", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_malformed_file_is_one_clear_error_and_nothing_is_written(tmp_path, label, mutate, message):
    path = tmp_path / "bad.h5"
    write_plain(path, mutate)
    out = tmp_path / "run"
    with pytest.raises(DataValidationError) as info:
        ptyframe.reconstruct(path, "epie", epochs=2, out_dir=out)
    text = str(info.value)
    assert message in text and str(path) in text, text
    assert not out.exists()


def test_missing_truncated_and_non_hdf5_files(tmp_path):
    good = tmp_path / "good.h5"
    write_plain(good)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:2048])
    text = tmp_path / "notes.txt"
    text.write_text("not hdf5")
    cases = [
        (tmp_path / "nope.h5", "no such file"),
        (tmp_path, "is not a file"),
        (truncated, "cannot be read as HDF5"),
        (text, "cannot be read as HDF5"),
    ]
    for path, message in cases:
        with pytest.raises(DataValidationError, match=message):
            ptyframe.reconstruct(path, "epie", epochs=1, out_dir=tmp_path / "run")
        assert not (tmp_path / "run").exists()


@pytest.fixture()
def good_file(tmp_path):
    path = tmp_path / "good.h5"
    write_plain(path)
    return path


CONFIG_CASES = [
    ("unknown engine", dict(engine="epei"), UnknownComponentError, "available: "),
    (
        "misspelled engine field",
        dict(engine={"name": "epie", "alpah": 0.3}),
        ConfigError,
        "has no field(s) alpah",
    ),
    ("alpha out of range", dict(engine="epie", alpha=2.5), ConfigError, "epie.alpha = 2.5"),
    ("rPIE beta out of range", dict(engine="rpie", beta=-1.0), ConfigError, "rpie.beta"),
    ("negative epochs", dict(engine="epie", epochs=-3), ConfigError, "epochs = -3"),
    ("unknown initial probe", dict(init={"probe": "gauss"}), ConfigError, "init.probe"),
    ("probe file not given", dict(init={"probe": "file"}), ConfigError, "init.probe_path"),
    ("zero probe modes", dict(init={"probe_modes": 0}), ConfigError, "probe_modes"),
]


@pytest.mark.parametrize(
    "label,kwargs,error,message", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES]
)
def test_config_errors_before_any_work(tmp_path, good_file, label, kwargs, error, message):
    kwargs = dict(kwargs)
    engine = kwargs.pop("engine", "epie")
    with pytest.raises(error) as info:
        ptyframe.reconstruct(good_file, engine, out_dir=tmp_path / "run", **kwargs)
    assert message in str(info.value), str(info.value)
    assert not (tmp_path / "run").exists()


def test_bad_initial_probe_files(tmp_path, good_file):
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.ones((8, 8), dtype=np.complex64))
    nan = tmp_path / "nan.npy"
    arr = np.ones((16, 16), dtype=np.complex64)
    arr[2, 2] = np.nan
    np.save(nan, arr)
    for path, message in (
        (wrong, "has shape (1, 8, 8)"),
        (nan, "NaN or Inf"),
        (tmp_path / "missing.npy", "probe file not found"),
    ):
        with pytest.raises(
            DataValidationError, match=message.replace("(", r"\(").replace(")", r"\)")
        ):
            ptyframe.reconstruct(
                good_file,
                "epie",
                out_dir=tmp_path / "run",
                init={"probe": "file", "probe_path": str(path)},
            )
        assert not (tmp_path / "run").exists()


def test_existing_output_is_never_overwritten(tmp_path, good_file):
    out = tmp_path / "run"
    ptyframe.reconstruct(good_file, "epie", epochs=1, out_dir=out)
    before = (out / "recon.h5").read_bytes()
    with pytest.raises(OutputExistsError, match="output.overwrite=true"):
        ptyframe.reconstruct(good_file, "epie", epochs=2, out_dir=out)
    assert (out / "recon.h5").read_bytes() == before


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "good.h5"
    write_plain(path)
    return path.read_bytes()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=st.integers(min_value=0, max_value=20000),
    flips=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=20000), st.integers(min_value=1, max_value=255)
        ),
        max_size=4,
    ),
)
def test_damaged_files_never_crash_with_anything_but_a_validation_error(
    tmp_path, valid_bytes, cut, flips
):
    """Truncate and corrupt a valid file at random: opening either works or says why."""
    data = bytearray(valid_bytes[: max(cut, 0) or len(valid_bytes)])
    for pos, val in flips:
        if pos < len(data):
            data[pos] ^= val
    path = tmp_path / f"damaged_{cut}_{len(flips)}.h5"
    path.write_bytes(bytes(data))
    try:
        ds = PtychoDataset.open(path)
        ds.intensities(0)
    except DataValidationError as exc:
        assert str(path) in str(exc)
