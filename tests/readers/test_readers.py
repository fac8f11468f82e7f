"""Readers: CXI, NXcxi_ptycho and PtyLab files give the same scan as the data-exchange file.

Files are written with plain h5py from the published layouts (``foreign_h5``); the files
that cdtools-py writes itself are tested in ``test_readers_cdtools.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np
import pytest

import ptyframe
from ptyframe.data.exchange import write_dataset
from ptyframe.data.preprocess import DISTINCT_ORIENTATIONS, compose, orient
from ptyframe.data.reader import ScanFile
from ptyframe.hookspecs import hookimpl
from ptyframe.plugins import build_registry, default_registry, make_plugin_manager
from ptyframe.registry import BuildContext

from foreign_h5 import write_foreign
from synth import make_dataset

KINDS = ("cxi", "nxcxi", "ptylab")


@pytest.fixture(scope="module")
def case():
    return make_dataset(m=32, n=6, step=6.0, jitter=0.7, seed=3)


def _open(path, registry=None, **options):
    reg = registry or default_registry()
    return reg.build("dataset", {"name": "file", "path": str(path), **options}, BuildContext(reg))


@pytest.mark.parametrize("kind", KINDS)
def test_foreign_file_gives_the_same_scan_as_data_exchange(tmp_path, case, kind):
    path = write_foreign(tmp_path / f"scan.{kind}", case, kind)
    ds = _open(path)
    assert ds.conventions["reader"] == kind
    assert ds.geometry.pixel_size_m == pytest.approx(case.geometry.pixel_size_m, rel=1e-6)
    assert ds.geometry.energy_ev == pytest.approx(case.geometry.energy_ev, rel=1e-6)
    offset = case.geometry.positions_px - ds.geometry.positions_px
    # a whole-pixel origin shift (the stage's origin is arbitrary), nothing else
    np.testing.assert_allclose(offset, np.round(offset[:1]).repeat(len(offset), 0), atol=1e-6)
    assert ds.geometry.positions_px.min() >= 0 and ds.geometry.positions_px.min(0).max() < 1
    np.testing.assert_array_equal(ds.intensities(0), case.intensities(0))


def test_cxi_reconstructs_exactly_like_data_exchange(tmp_path, case):
    """Same patterns, same positions up to a whole pixel: the same ePIE result."""
    exch = tmp_path / "scan.h5"
    write_dataset(exch, case.intensities(0)[None], case.geometry)
    cxi = write_foreign(tmp_path / "scan.cxi", case, "cxi")
    a = ptyframe.reconstruct(exch, "epie", epochs=15, seed=2)
    b = ptyframe.reconstruct(cxi, "epie", epochs=15, seed=2)
    shift = np.round(case.geometry.positions_px[0] - _open(cxi).geometry.positions_px[0])
    sy, sx = (int(v) for v in shift)
    oa, ob = a.object[0][sy:, sx:], b.object[0]
    ny, nx = min(oa.shape[0], ob.shape[0]), min(oa.shape[1], ob.shape[1])
    np.testing.assert_allclose(ob[:ny, :nx][4:-4, 4:-4], oa[:ny, :nx][4:-4, 4:-4], atol=2e-4)
    assert b.history.last("data_error") == pytest.approx(a.history.last("data_error"), rel=1e-4)


def test_auto_chooses_by_contents_not_extension(tmp_path, case):
    odd = write_foreign(tmp_path / "scan.h5", case, "ptylab")  # PtyLab layout, .h5 name
    assert _open(odd).conventions["reader"] == "ptylab"
    nx = write_foreign(tmp_path / "scan.cxi", case, "nxcxi")  # NXcxi is CXI-compatible
    assert _open(nx).conventions["reader"] == "nxcxi"
    from ptyframe.errors import DataValidationError

    with pytest.raises(DataValidationError, match="missing /ptychogram"):
        _open(nx, reader="ptylab")


@dataclass
class _NpyLikeConfig:
    name: str = "toy"


class _ToyReader:
    """A third-party layout: /frames [n, M, M] and /centres_m [n, 2], 8 keV, dx in /dx_m."""

    name = "toy"
    priority = 5

    def sniff(self, f):
        return "frames" in f and "centres_m" in f

    def read(self, f, path):
        n, h, w = f["frames"].shape
        dx = float(f["dx_m"][()])
        return ScanFile(
            path=path,
            reader=self.name,
            data_key="frames",
            layout="tiles",
            shape=(1, n, h, w),
            quantity="intensity",
            wavelength_m=1.239841984e-6 / 8000.0,
            extent_m=(dx * h, dx * w),
            centres_m=np.asarray(f["centres_m"][()]),
            conventions={"positions": "/centres_m"},
        )


class _ToyPlugin:
    @hookimpl
    def ptyframe_register(self, registry):
        registry.add_reader(_NpyLikeConfig, lambda config: _ToyReader())


def test_a_third_party_reader_is_one_plugin(tmp_path, case):
    path = tmp_path / "scan.toy"
    g = case.geometry
    with h5py.File(path, "w") as f:
        f["frames"] = case.intensities(0)
        f["centres_m"] = (g.positions_px + 16) * g.pixel_size_m
        f["dx_m"] = g.pixel_size_m
    pm, infos = make_plugin_manager([("toy_plugin", _ToyPlugin())])
    reg = build_registry(pm, infos)
    assert "toy" in reg.names("reader") and reg.get("reader", "toy").provider.startswith(
        "toy_plugin"
    )
    ds = _open(path, registry=reg)
    assert ds.conventions["reader"] == "toy"
    np.testing.assert_allclose(ds.geometry.positions_px, g.positions_px - 1, atol=1e-9)
    out = tmp_path / "run"
    ptyframe.reconstruct(path, "epie", epochs=2, registry=reg, out_dir=out)
    with h5py.File(out / "recon.h5") as f:
        assert '"reader": "toy"' in f.attrs["data_conventions"]


def test_recon_records_conventions_and_writes_cxi(tmp_path, case):
    from ptyframe.config import OutputConfig, ReconstructConfig
    from ptyframe.runner import run

    path = write_foreign(tmp_path / "scan.cxi", case, "cxi")
    reg = default_registry()
    cfg = ReconstructConfig(
        data=reg.config("dataset", {"name": "file", "path": str(path)}),
        engine=reg.config("engine", {"name": "epie", "epochs": 3}),
        output=OutputConfig(dir=str(tmp_path / "run"), format="cxi", images=False),
        progress=False,
    )
    run(cfg, reg)
    with h5py.File(tmp_path / "run" / "recon.h5") as f:
        conv = f.attrs["data_conventions"]
    assert '"reader": "cxi"' in conv and "sample translation" in conv
    with h5py.File(tmp_path / "run" / "recon.cxi") as f, h5py.File(path) as src:
        assert f["entry_1/image_1/data"].shape == _open(path).geometry.object_shape
        assert f["entry_1/image_2/data"].shape == (1, 32, 32)
        assert f["entry_1/image_1/data_type"][()] == b"object"
        # positions are not refined by ePIE: the translations written are the input's
        np.testing.assert_allclose(
            f["entry_1/data_1/translation"][()],
            src["entry_1/sample_1/geometry_1/translation"][()],
            rtol=0,
            atol=1e-12,
        )
        assert len(f["entry_1/image_1/process_1/history/data_error"]) == 3


@pytest.mark.parametrize("written", [4, 1], ids=["transposed", "flipped"])
def test_auto_orientation_recovers_a_transposed_and_a_flipped_file(
    tmp_path, capsys, monkeypatch, written
):
    """The right orientation (or its twin, which fits the data equally) has the lowest error.

    The choice is printed to stderr when no log handler takes it: a logger of its own keeps
    it there whatever logging an earlier test in the process configured.
    """
    import logging

    from ptyframe.data import orientation as orientation_module

    monkeypatch.setattr(orientation_module, "log", logging.Logger("orientation-test"))
    ds = make_dataset(m=32, n=7, step=6.0, photons=1e5, seed=3)
    frames = np.ascontiguousarray(orient(ds.intensities(0), written))
    path = write_foreign(tmp_path / "scan.cxi", ds, "cxi", frames=frames)
    fixed = _open(path, orientation="auto")
    undo = {compose(k, 3) for k in range(8) if compose(written, k) == 0} | {
        k for k in range(8) if compose(written, k) == 0
    }
    chosen = int(fixed.conventions["orientation"].split()[0])
    assert chosen in undo, fixed.conventions["orientation_auto"]
    message = capsys.readouterr().err
    assert "data.orientation=auto chose" in message and "margin" in message
    margin = float(message.split("margin ")[1].split("x")[0])
    assert margin > 1.03, message
    np.testing.assert_array_equal(fixed.intensities(0), orient(frames, chosen))
    assert chosen in DISTINCT_ORIENTATIONS


def test_explicit_orientation_undoes_a_transpose(tmp_path, case):
    frames = np.ascontiguousarray(orient(case.intensities(0), 4))
    path = write_foreign(tmp_path / "scan.cxi", case, "cxi", frames=frames)
    np.testing.assert_array_equal(_open(path, orientation="4").intensities(0), case.intensities(0))


def test_ptylab_file_orientation_is_applied(tmp_path, case):
    frames = np.ascontiguousarray(orient(case.intensities(0), 1))  # stored flipped
    path = write_foreign(tmp_path / "scan.h5", case, "ptylab", frames=frames)
    with h5py.File(path, "a") as f:
        del f["orientation"]
        f["orientation"] = 1  # PtyLab flips columns on load
    ds = _open(path)
    np.testing.assert_array_equal(ds.intensities(0), case.intensities(0))
    assert "/orientation = 1" in ds.conventions["file_orientation"]


def test_raster_nxcxi_data_is_read_in_scan_order(tmp_path, case):
    def raster(parts):
        det = "entry_1/instrument_1/detector_1/data"
        parts[det] = parts[det].reshape(6, 6, 32, 32)
        parts["link:entry_1/data_1/data"] = None

    path = write_foreign(tmp_path / "scan.nxs", case, "nxcxi", mutate=raster)
    ds = _open(path)
    assert ds.layout == "raster"
    np.testing.assert_array_equal(ds.intensities(0, [7, 3, 30]), case.intensities(0, [7, 3, 30]))


def test_reader_and_orientation_are_chosen_from_the_command_line(tmp_path, case):
    import os
    import subprocess
    import sys

    frames = np.ascontiguousarray(orient(case.intensities(0), 4))
    path = write_foreign(tmp_path / "scan.data", case, "cxi", frames=frames)
    args = [
        sys.executable,
        "-m",
        "ptyframe.cli",
        "reconstruct",
        f"data.path={path}",
        "data.reader=cxi",
        "data.orientation=4",
        "engine.epochs=2",
        "output.format=cxi",
        "output.images=false",
        "progress=false",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=240)
    assert res.returncode == 0, res.stderr
    with h5py.File(tmp_path / "run" / "recon.h5") as f:
        conv = f.attrs["data_conventions"]
    assert '"reader": "cxi"' in conv and '"orientation": "4 (transpose) on frames"' in conv
    assert (tmp_path / "run" / "recon.cxi").exists()
