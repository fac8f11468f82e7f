"""Malformed inputs: each gives one clear error (type and message) and writes nothing.

The table "What a bad input says" of the manual (docs/guide/data.md) is this list.
"""

from __future__ import annotations

import h5py
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

from foreign_h5 import write_foreign
from plain_h5 import write_plain
from synth import make_dataset


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


DET = "entry_1/instrument_1/detector_1"
TRANS = "entry_1/sample_1/geometry_1/translation"


def _scale(key, factor):
    def mutate(parts):
        parts[key] = parts[key] * factor

    return mutate


def _drop(*keys):
    def mutate(parts):
        for key in keys:
            parts[key] = None

    return mutate


def _first_rows(key, n):
    def mutate(parts):
        parts[key] = parts[key][:n]

    return mutate


def _nx_units(key, unit):
    def mutate(parts):
        parts[f"attrs:{key}@units"] = unit

    return mutate


#: (label, layout, mutate, message): foreign layouts, one line each, no output.
FOREIGN_CASES = [
    ("CXI: no detector distance", "cxi", _set(f"{DET}/distance", None), f"missing {DET}/distance"),
    (
        "CXI: no pixel size",
        "cxi",
        _drop(f"{DET}/x_pixel_size", f"{DET}/y_pixel_size"),
        "missing detector geometry",
    ),
    (
        "CXI: no energy",
        "cxi",
        _set("entry_1/instrument_1/source_1/energy", None),
        "missing /entry_1/instrument_1/source_1/energy",
    ),
    (
        "CXI: energy in eV",
        "cxi",
        _set("entry_1/instrument_1/source_1/energy", np.float64(8000.0)),
        "write energy_ev * 1.602176634e-19",
    ),
    ("CXI: pitch in um", "cxi", _set(f"{DET}/x_pixel_size", np.float64(75.0)), "plausible"),
    (
        "CXI: no translations",
        "cxi",
        _drop(TRANS, "link:entry_1/data_1/translation"),
        "missing scan",
    ),
    ("CXI: translations in pixels", "cxi", _scale(TRANS, 1 / 20e-9), "look like pixels"),
    ("CXI: translations in nm", "cxi", _scale(TRANS, 1e9), "micrometres or nanometres"),
    ("CXI: translations scaled twice", "cxi", _scale(TRANS, 1e-6), "less than one object pixel"),
    ("CXI: fewer translations than frames", "cxi", _first_rows(TRANS, 5), "rows but the data has"),
    ("CXI: 2-D data", "cxi", _first_rows(f"{DET}/data", 1), "[n_frames, H, W]"),
    (
        "CXI: mask of the wrong size",
        "cxi",
        _set(f"{DET}/mask", np.zeros((8, 8), np.uint32)),
        "mask is 8x8 but the frames are 16x16",
    ),
    ("CXI: no data", "cxi", _set(f"{DET}/data", None), f"missing dataset /{DET}/data"),
    (
        "NXcxi: unknown length unit",
        "nxcxi",
        _nx_units(f"{DET}/distance", "furlong"),
        "units 'furlong'",
    ),
    (
        "NXcxi: no photon energy",
        "nxcxi",
        _set("entry_1/instrument_1/beam_1/energy", None),
        "missing /entry_1/instrument_1/beam_1/energy",
    ),
    (
        "NXcxi: translations in mm labelled um",
        "nxcxi",
        _nx_units(f"{DET}/translation", "um"),
        "less than one object pixel",
    ),
    ("PtyLab: no zo", "ptylab", _set("zo", None), "missing /zo"),
    ("PtyLab: encoder in pixels", "ptylab", _scale("encoder", 1 / 20e-9), "look like pixels"),
    ("PtyLab: fewer positions", "ptylab", _first_rows("encoder", 3), "/encoder has 3 rows"),
    ("PtyLab: bad orientation code", "ptylab", _set("orientation", 9), "ptypy orientation"),
    ("PtyLab: wavelength in nm", "ptylab", _set("wavelength", np.float64(0.155)), "plausible"),
]


@pytest.mark.parametrize(
    "label,layout,mutate,message", FOREIGN_CASES, ids=[c[0] for c in FOREIGN_CASES]
)
def test_malformed_foreign_file_is_one_clear_error_and_nothing_is_written(
    tmp_path, label, layout, mutate, message
):
    ds = make_dataset(m=16, n=4, step=4.0, jitter=0.7, seed=3)
    mutate_2d = mutate
    if label == "CXI: 2-D data":

        def mutate_2d(parts):
            parts[f"{DET}/data"] = parts[f"{DET}/data"][0]

    path = write_foreign(tmp_path / f"bad.{layout}", ds, layout, mutate=mutate_2d)
    out = tmp_path / "run"
    with pytest.raises(DataValidationError) as info:
        ptyframe.reconstruct(path, "epie", epochs=2, out_dir=out)
    text = str(info.value)
    assert message in text and str(path) in text, text
    assert "\n" not in text
    assert not out.exists()


#: (label, data options, message): detector options that do not fit the file.
OPTION_CASES = [
    ("mask of the wrong size", {"mask": "MASK8"}, "data.mask is 8x8 but the frames are 16x16"),
    ("mask file missing", {"mask": "nope.npy"}, "data.mask file nope.npy not found"),
    ("mask dataset missing", {"mask": "/no/such"}, "data.mask: no dataset /no/such"),
    ("crop larger than frames", {"crop": 32}, "data.crop=32 is larger than"),
    ("bin does not divide", {"bin": 3}, "does not split into data.bin=3"),
    ("orientation unknown", {"orientation": "sideways"}, "data.orientation = 'sideways'"),
    ("reader unknown", {"reader": "tiff"}, "unknown reader 'tiff'"),
]


@pytest.mark.parametrize("label,options,message", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_detector_options_that_do_not_fit_say_so(tmp_path, label, options, message):
    from ptyframe.config import OutputConfig, ReconstructConfig
    from ptyframe.errors import PtyframeError
    from ptyframe.plugins import default_registry
    from ptyframe.runner import run

    ds = make_dataset(m=16, n=4, step=4.0, jitter=0.7, seed=3)
    path = write_foreign(tmp_path / "scan.cxi", ds, "cxi")
    np.save(tmp_path / "mask8.npy", np.zeros((8, 8)))
    opts = {k: (str(tmp_path / "mask8.npy") if v == "MASK8" else v) for k, v in options.items()}
    reg = default_registry()
    out = tmp_path / "run"
    with pytest.raises(PtyframeError) as info:
        cfg = ReconstructConfig(
            data=reg.config("dataset", {"name": "file", "path": str(path), **opts}),
            engine=reg.config("engine", {"name": "epie", "epochs": 2}),
            output=OutputConfig(dir=str(out)),
            progress=False,
        )
        run(cfg, reg)
    assert message in str(info.value), str(info.value)
    assert not out.exists()


def test_a_file_no_reader_knows(tmp_path):
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as f:
        f["frames_of_mine"] = np.ones((4, 16, 16))
    with pytest.raises(DataValidationError, match="no reader recognises this file"):
        ptyframe.reconstruct(path, "epie", epochs=1, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


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
        "has no field(s) alpah (did you mean alpha?)",
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


@pytest.fixture(scope="module")
def foreign_bytes(tmp_path_factory):
    ds = make_dataset(m=16, n=4, step=4.0, jitter=0.7, seed=3)
    base = tmp_path_factory.mktemp("fuzz_foreign")
    return {k: write_foreign(base / f"good.{k}", ds, k).read_bytes() for k in ("cxi", "ptylab")}


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["cxi", "ptylab"]),
    cut=st.integers(min_value=0, max_value=30000),
    flips=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=30000), st.integers(min_value=1, max_value=255)
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_damaged_foreign_files_never_crash_with_anything_but_a_validation_error(
    tmp_path, foreign_bytes, kind, cut, flips
):
    """Truncate and corrupt valid CXI and PtyLab files: reading either works or says why."""
    good = foreign_bytes[kind]
    data = bytearray(good[: max(cut, 0) or len(good)])
    for pos, val in flips:
        if pos < len(data):
            data[pos] ^= val
    path = tmp_path / f"damaged_{kind}_{cut}_{len(flips)}.h5"
    path.write_bytes(bytes(data))
    from ptyframe.plugins import default_registry
    from ptyframe.registry import BuildContext

    reg = default_registry()
    try:
        ds = reg.build("dataset", {"name": "file", "path": str(path)}, BuildContext(reg))
        ds.intensities(0)
    except DataValidationError as exc:
        assert str(path) in str(exc)
