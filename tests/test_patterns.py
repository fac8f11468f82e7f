"""Patterns in their stored dtype: readers, pattern sources, the amplitude kernels (#26)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from ptyframe.data.counts import PixelRule, amplitudes, frame_reader
from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.exchange import write_metadata
from ptyframe.data.geometry import ScanGeometry
from ptyframe.data.holdout import TileSubset
from ptyframe.data.measurements import Measurements
from ptyframe.data.patterns import MemorySource, block_order
from ptyframe.data.reader import read_scan
from ptyframe.data.scanfile import DetectorOptions, build_dataset
from ptyframe.engines.base import visiting_order
from ptyframe.physics.fft import from_centred

M = 16
N_TILES = 23


def _geometry(n: int = N_TILES) -> ScanGeometry:
    side = int(np.ceil(np.sqrt(n)))
    g = np.stack(np.meshgrid(np.arange(side) * 3.0, np.arange(side) * 3.0, indexing="ij"), -1)
    pos = g.reshape(-1, 2)[:n]
    return ScanGeometry(pos, (M, M), (M + 3 * side, M + 3 * side), 8000.0, 2e-8)


def _counts(seed: int = 0, n: int = N_TILES) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(rng.gamma(0.6, 40.0, size=(n, M, M)))


def _write(path, data, quantity="intensity", extra=None):
    with h5py.File(path, "w") as f:
        d = f.create_dataset("exchange/data", data=data[None], chunks=(1, 1, M, M))
        d.attrs["quantity"] = quantity
        write_metadata(f, _geometry(data.shape[0]))
        for k, v in (extra or {}).items():
            f[k] = v
    return path


def _dataset(path, registry, **opts):
    return build_dataset(read_scan(path, registry), DetectorOptions(check_field=False, **opts))


def _reference(ds: PtychoDataset, dtype=torch.float32):
    """``sqrt(clamp(I, 0))`` of ``intensities``, FFT order, correctly rounded (float64 root
    rounded to float32), and the measured pixels."""
    inten = from_centred(torch.from_numpy(ds.intensities(0)))
    root = torch.sqrt(torch.clamp(inten, min=0).double()).float()
    return root.to(dtype), inten >= 0


def test_amplitudes_are_todays_within_one_unit_in_the_last_place(tmp_path, registry):
    """Today's conversion (``torch.sqrt`` in float32) and the correctly rounded root the data
    layer takes (a compiled kernel reproduces it, not torch's) differ by at most one unit in
    the last place.

    Would catch: amplitudes that moved by more than rounding.
    """
    raw = _counts(7).astype(np.float32)
    ds = _dataset(_write(tmp_path / "u.h5", raw), registry)
    inten = from_centred(torch.from_numpy(ds.intensities(0)))
    today = torch.sqrt(torch.clamp(inten, min=0))
    now = Measurements.from_dataset(ds).amplitudes
    ulp = torch.from_numpy(np.spacing(today.numpy()))
    assert bool(((now - today).abs() <= ulp).all())


@pytest.fixture(scope="module")
def registry():
    from ptyframe.plugins import default_registry

    return default_registry()


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "float16", "float32"])
def test_stored_dtype_round_trip(tmp_path, registry, dtype):
    """A file of ``dtype`` is held in ``dtype`` and gives today's amplitudes bit for bit.

    Would catch: counts converted to float on read (memory), or a conversion whose
    amplitudes differ from ``sqrt(clamp(I, 0))`` of the float32 intensities.
    """
    raw = _counts().astype(dtype)
    ds = _dataset(_write(tmp_path / "d.h5", raw), registry)
    src = MemorySource.load(ds)
    assert src.dtype == np.dtype(dtype) and src.counts.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(src.counts, raw)  # centred, as stored
    for real in (torch.float32, torch.float64):
        ref_a, _ = _reference(ds, real)
        meas = Measurements.from_dataset(ds, dtype=real, chunk_bytes=5 * M * M * 4)
        assert torch.equal(meas.amplitudes, ref_a) and meas.valid is None
        src.real_dtype = real
        a, v = src.batch(np.arange(N_TILES))
        assert torch.equal(a, ref_a) and v is None
    assert src.mean_intensity_sum() == pytest.approx(float(raw.astype(float).sum((1, 2)).mean()))


def test_detector_mask_is_shared_and_per_pattern_only_where_patterns_differ(tmp_path, registry):
    """A bad-pixel mask gives one ``[M, M]`` mask for all patterns (a stride-0 view); a
    saturation level, which differs pattern by pattern, gives a mask per pattern; both equal
    today's, and the counts keep their dtype with the mask applied on use.

    Would catch: a per-pattern copy of a shared mask, or masked pixels kept as measured.
    """
    raw = _counts(1).astype(np.uint16)
    bad = np.zeros((M, M), dtype=np.uint8)
    bad[3, 4] = bad[10, 2] = 1
    path = _write(tmp_path / "m.h5", raw, extra={"bad": bad})
    ds = _dataset(path, registry, mask="/bad", orientation=5)
    meas = Measurements.from_dataset(ds, chunk_bytes=4 * M * M * 4)
    ref_a, ref_v = _reference(ds)
    assert meas.shared_mask and meas.valid.stride(0) == 0
    assert torch.equal(meas.valid, ref_v) and torch.equal(meas.amplitudes, ref_a)
    src = MemorySource.load(ds)
    assert src.dtype == np.uint16 and src.rule.mask is not None
    assert int((~src.rule.mask).sum()) == 2 and src.has_unmeasured
    a, v = src.batch(np.array([4, 0, 7]))
    assert torch.equal(a, ref_a[[4, 0, 7]]) and torch.equal(v, ref_v[[4, 0, 7]])
    sat = float(np.percentile(raw, 99.5))
    ds2 = _dataset(path, registry, saturation=sat)
    meas2 = Measurements.from_dataset(ds2, chunk_bytes=4 * M * M * 4)
    ref_a2, ref_v2 = _reference(ds2)
    assert not meas2.shared_mask and meas2.valid.stride(0) == M * M
    assert torch.equal(meas2.valid, ref_v2) and torch.equal(meas2.amplitudes, ref_a2)


def test_magnitudes_negative_values_crop_and_subsets_match_intensities(tmp_path, registry):
    """Magnitude files, negative (unmeasured) values, a crop, a dark frame with binning (the
    float32 fallback) and tile subsets all read as ``PtychoDataset.intensities`` does.

    Would catch: a dtype-keeping reader that forgets the squaring of magnitudes, the crop
    window or the tile map of a subset.
    """
    rng = np.random.default_rng(5)
    cnt = _counts(2)
    neg = np.where(rng.random(cnt.shape) < 0.02, -1, cnt).astype(np.float32)
    cases = [
        (_write(tmp_path / "mag.h5", np.sqrt(np.abs(neg)) * np.sign(neg), "magnitude"), {}),
        (_write(tmp_path / "neg.h5", neg), {"crop": 12}),
        (_write(tmp_path / "db.h5", cnt.astype(np.uint16), extra={"dk": np.ones((M, M))}),
         {"dark": "/dk", "bin": 2}),
    ]  # fmt: skip
    for path, opts in cases:
        ds = _dataset(path, registry, **opts)
        for view in (ds, TileSubset(ds, np.array([9, 2, 3, 4, 20]))):
            ref_a, ref_v = _reference(view)
            meas = Measurements.from_dataset(view, chunk_bytes=2 * M * M * 4)
            assert torch.equal(meas.amplitudes, ref_a)
            assert (meas.valid is None and bool(ref_v.all())) or torch.equal(meas.valid, ref_v)
            a, _ = MemorySource.load(view).batch(np.arange(view.n_tiles))
            assert torch.equal(a, ref_a)


def test_amplitude_kernel_equals_its_torch_reference():
    """``amplitude_kernels.amplitude_row`` (numba) gives the torch reference's bits.

    Would catch: a kernel reading the centred row in the wrong order (fftshift instead of
    ifftshift on an odd window), rounding sqrt differently, or ignoring mask or saturation.
    """
    from ptyframe.data.amplitude_kernels import kernel_row, kernels

    k = kernels()
    rng = np.random.default_rng(3)
    for m, n, dtype, squared in ((16, 16, np.uint16, False), (15, 17, np.float32, False),
                                 (12, 12, np.float16, True), (9, 8, np.uint32, False)):  # fmt: skip
        counts = rng.poisson(30.0, size=(m, n)).astype(np.float64)
        if np.dtype(dtype).kind == "f":
            counts[rng.random((m, n)) < 0.1] = -1.0
        counts = counts.astype(dtype)
        mask = rng.random((m, n)) > 0.1
        rule = PixelRule(mask, 45.0, squared)
        ref_a, ref_v = amplitudes(torch.from_numpy(counts)[None], rule, torch.float64)
        amp = np.empty((m, n))
        valid = np.empty((m, n), dtype=bool)
        row = kernel_row(counts)
        bad = k.amplitude_row(row, mask, True, rule.saturation32, squared, amp, valid)
        np.testing.assert_array_equal(amp, ref_a[0].numpy())
        np.testing.assert_array_equal(valid, ref_v[0].numpy())
        assert bad == int((~valid).sum()) > 0


def test_one_block_order_is_todays_visiting_order_and_blocks_keep_scan_order():
    """One block = ``visiting_order`` (in-memory results unchanged); with blocks, each block
    is a permutation of its own consecutive tiles, blocks in scan order.

    Would catch: an order that changed today's runs, or blocks visited out of scan order
    (a streamed run would read every block more than once per sweep).
    """
    for seed, epoch in ((0, 0), (3, 7)):
        np.testing.assert_array_equal(
            block_order(50, 50, seed, epoch), visiting_order(50, seed, epoch)
        )
        np.testing.assert_array_equal(
            block_order(50, 99, seed, epoch), visiting_order(50, seed, epoch)
        )
        o = block_order(50, 16, seed, epoch)
        assert sorted(o.tolist()) == list(range(50))
        for s in range(0, 50, 16):
            assert sorted(o[s : s + 16].tolist()) == list(range(s, min(s + 16, 50)))
    assert not np.array_equal(block_order(50, 16, 0, 0), block_order(50, 16, 0, 1))


def test_in_memory_source_visits_and_statistics(registry, tmp_path):
    """``visits`` yields the stored rows in the order asked; ``amplitude_sum`` and
    ``mean_intensity_sum`` equal ``Measurements``' (the engines' normalisers) whatever the
    block size.

    Would catch: visits handing out rows of the wrong pattern, or statistics that depend on
    how the patterns are cut into blocks (a streamed run would report other errors).
    """
    raw = _counts(4).astype(np.uint32)
    ds = _dataset(_write(tmp_path / "v.h5", raw), registry)
    meas = Measurements.from_dataset(ds)
    a = MemorySource.load(ds)
    b = MemorySource.load(ds, block_patterns=5)
    order = b.order(1, 2)
    got = [(j, row.copy()) for j, row in b.visits(order)]
    assert [j for j, _ in got] == order.tolist()
    for j, row in got:
        np.testing.assert_array_equal(row, raw[j])
    for s in (a, b):
        assert s.amplitude_sum() == pytest.approx(meas.amplitude_sum(), rel=1e-12)
        assert s.mean_intensity_sum() == meas.mean_intensity_sum()


def test_in_memory_dataset_is_used_without_a_copy():
    """An in-memory dataset read whole keeps its array (no second copy of the patterns)."""
    raw = _counts(6).astype(np.uint16)
    ds = PtychoDataset(_geometry(), patterns=raw[None])
    src = MemorySource.load(ds)
    assert np.shares_memory(src.counts, raw)
    assert frame_reader(ds).dtype == np.uint16


def test_chunked_simulation_writes_the_patterns_of_simulate(tmp_path, registry):
    """``simulation.large.write_simulation`` writes ``Simulator.run``'s patterns bit for bit,
    in float32 and as uint32 counts, chunk by chunk.

    Would catch: a chunked writer whose dose scale, noise stream or far field differs from
    ``ptyframe simulate`` (the benchmark's data would not be the project's simulation).
    """
    from ptyframe.simulation.large import write_simulation

    sim = registry.build("simulation", {"name": "ptycho2d", "window_px": 32, "seed": 3})
    parts = (
        registry.build("phantom", {"name": "natural"}),
        registry.build("probe", {"name": "focused"}),
        registry.build("scan", {"name": "raster", "n_y": 6, "n_x": 5}),
    )
    ref = sim.run(*parts)
    for dtype in ("float32", "uint32"):
        path = tmp_path / f"s_{dtype}.h5"
        write_simulation(sim, *parts, path, dtype=dtype, chunk_target=7)
        with h5py.File(path) as f:
            data = f["exchange/data"][()]
            assert data.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(data.astype(np.float32), ref.patterns)
            np.testing.assert_allclose(
                f["truth/illumination"][()], ref.truth.illumination, rtol=1e-6
            )
