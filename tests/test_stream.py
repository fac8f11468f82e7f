"""Streamed pattern sources: blocks read ahead in a thread, same rows as in memory (#26)."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest
import torch

from ptyframe.data.counts import frame_reader
from ptyframe.data.exchange import write_metadata
from ptyframe.data.geometry import ScanGeometry
from ptyframe.data.patterns import MemorySource, source_info
from ptyframe.data.reader import read_scan
from ptyframe.data.scanfile import DetectorOptions, build_dataset
from ptyframe.data.stream import PatternReadError, StreamedSource, open_source
from ptyframe.errors import DataValidationError, PtyframeError

M = 16


def _geometry(n: int) -> ScanGeometry:
    pos = np.stack([np.arange(n) % 7 * 3.0, np.arange(n) // 7 * 3.0], axis=1)
    shape = (int(pos[:, 0].max()) + M, int(pos[:, 1].max()) + M)
    return ScanGeometry(pos, (M, M), shape, 8000.0, 2e-8)


def _write(path, data, **kw):
    with h5py.File(path, "w") as f:
        d = f.create_dataset("exchange/data", data=data[None], chunks=(1, 1, M, M), **kw)
        d.attrs["quantity"] = "intensity"
        write_metadata(f, _geometry(data.shape[0]))
        f["bad"] = np.eye(M, dtype=np.uint8)
    return path


def _counts(n: int, seed: int = 0, dtype=np.uint16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(rng.gamma(0.6, 40.0, size=(n, M, M))).astype(dtype)


@pytest.fixture(scope="module")
def registry():
    from ptyframe.plugins import default_registry

    return default_registry()


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ptyframe-prefetch"]


@pytest.mark.parametrize("opts", [{}, {"mask": "/bad", "orientation": 6, "crop": 12}])
def test_streamed_source_yields_the_rows_of_the_in_memory_one(tmp_path, registry, opts):
    """Streamed in blocks of 7 (with a rank's share of the tiles), the source visits the same
    patterns in the same order with the same stored rows, batches and statistics as an
    in-memory source given the same blocks, and holds the counts in their stored dtype.

    Would catch: a block read into the wrong place, a stale buffer handed out after the
    thread refilled it, an order that differs between the two (no bit-equal runs), a
    detector option applied on one path only, or a share that reads other ranks' tiles.
    """
    raw = _counts(40)
    ds = build_dataset(
        read_scan(_write(tmp_path / "s.h5", raw), registry),
        DetectorOptions(check_field=False, **opts),
    )
    for share in (None, np.arange(1, 40, 2)):
        mem = open_source(ds, 0, share, block_patterns=7)
        st = open_source(ds, 0, share, stream=True, block_patterns=7)
        assert isinstance(st, StreamedSource) and isinstance(mem, MemorySource)
        assert st.dtype == np.uint16 and st.n == mem.n and st.has_unmeasured == mem.has_unmeasured
        for epoch in range(2):
            order = st.order(5, epoch)
            np.testing.assert_array_equal(order, mem.order(5, epoch))
            got = [(j, r.copy()) for j, r in st.visits(order)]
            want = list(mem.visits(order))
            assert [j for j, _ in got] == [j for j, _ in want] == order.tolist()
            for (_, a), (_, b) in zip(got, want, strict=True):
                np.testing.assert_array_equal(a, b)
        idx = np.array([3, 0, mem.n - 1])
        for x, y in zip(st.batch(idx), mem.batch(idx), strict=True):
            assert (x is None and y is None) or torch.equal(x, y)
        assert st.amplitude_sum() == mem.amplitude_sum()
        assert st.mean_intensity_sum() == mem.mean_intensity_sum()
        st.close()
    assert not _prefetch_threads()


def test_prefetch_thread_stops_at_the_end_and_when_the_consumer_stops(tmp_path, registry):
    """The reading thread ends with the sweep, and when the consumer stops half way.

    Would catch: a thread left blocked on a buffer that never comes back (one leaked per
    sweep), or a generator that keeps reading after it was closed.
    """
    ds = build_dataset(
        read_scan(_write(tmp_path / "t.h5", _counts(30)), registry),
        DetectorOptions(check_field=False),
    )
    st = open_source(ds, stream=True, block_patterns=4)
    for _ in st.visits(st.order(0, 0)):
        pass
    assert st.thread is not None and not st.thread.is_alive()
    gen = st.visits(st.order(0, 1))
    for k, _ in enumerate(gen):
        if k == 9:  # in the third block of eight
            break
    gen.close()
    assert not st.thread.is_alive() and not _prefetch_threads()


def test_a_damaged_chunk_is_one_clear_error_naming_pattern_and_file(tmp_path, registry):
    """A corrupt compressed chunk raises ``PatternReadError`` (a ``PtyframeError``) in the
    consumer's thread, naming the pattern, its tile in the file and the file; the reading
    thread stops.

    Would catch: an error lost in the background thread (a hang, or zeros handed out), a
    message that does not say which pattern, or a thread left running after it.
    """
    path = _write(tmp_path / "bad.h5", _counts(30), compression="gzip")
    with h5py.File(path, "r") as f:
        info = f["exchange/data"].id.get_chunk_info_by_coord((0, 17, 0, 0))
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 3)
        fh.write(b"\x00\xff" * 8)
    ds = build_dataset(
        read_scan(path, registry), DetectorOptions(check_values=False, check_field=False)
    )
    with pytest.raises(PatternReadError, match="pattern 17"):
        open_source(ds, stream=True, block_patterns=5)  # its first pass meets it
    reader = frame_reader(ds)
    st = StreamedSource(reader, source_info(reader, ds, np.arange(30), 0), 5, has_unmeasured=False)
    seen = []
    with pytest.raises(PatternReadError) as err:
        for j, _ in st.visits(np.arange(30)):
            seen.append(j)
    msg = str(err.value)
    assert isinstance(err.value, (DataValidationError, PtyframeError))
    assert "pattern 17" in msg and "tile 17" in msg and str(path) in msg and "\n" not in msg
    assert seen == list(range(15))  # the blocks before the damaged one were used
    assert not st.thread.is_alive() and not _prefetch_threads()


def test_a_file_truncated_under_a_stream_is_one_clear_error(tmp_path, registry):
    """A file cut short after the source was made (a copy still running, a full disk):
    ``PatternReadError`` naming the file, in the consumer's thread; no thread left.

    Would catch: h5py's own multi-line ``OSError`` escaping from the reading thread.
    """
    path = _write(tmp_path / "cut.h5", _counts(30))
    ds = build_dataset(read_scan(path, registry), DetectorOptions(check_field=False))
    st = open_source(ds, stream=True, block_patterns=6)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(PatternReadError) as err:
        for _ in st.visits(st.order(0, 0)):
            pass
    assert str(path) in str(err.value) and "truncated" in str(err.value)
    assert "\n" not in str(err.value) and not _prefetch_threads()


def test_a_growing_file_is_streamed_through_swmr(tmp_path):
    """Tiles appended to a SWMR file after the source opened are streamed after ``extend``.

    Would catch: a reader that keeps the file's first extent (the new tiles unreadable) or
    does not read SWMR files (follow mode could not stream).
    """
    from ptyframe.data.follow import GrowingScan
    from ptyframe.data.patterns import SourceInfo
    from ptyframe.simulation.stream import append

    raw = _counts(20, 3).astype(np.float32)
    pos = _geometry(20).positions_px
    src = tmp_path / "src.h5"
    _write(src, raw)
    live = tmp_path / "live.h5"
    from ptyframe.simulation.stream import create

    create(live, src, (M, M))
    f = h5py.File(live, "a", libver="latest")
    f.swmr_mode = True
    append(f, raw[:8], pos[:8])
    scan = GrowingScan(live, timeout_s=2.0)
    assert scan.poll().n == 8
    reader = scan.reader()
    info = SourceInfo(8, (M, M), reader.dtype, reader.rule, np.arange(8), _geometry(8))
    st = StreamedSource(reader, info, 3, swmr=True, has_unmeasured=False)
    np.testing.assert_array_equal(np.stack([r.copy() for _, r in st.visits(np.arange(8))]), raw[:8])
    append(f, raw[8:], pos[8:])
    assert scan.poll().n == 20
    st.extend(np.arange(8, 20))
    rows = {j: r.copy() for j, r in st.visits(st.order(0, 0))}
    np.testing.assert_array_equal(np.stack([rows[j] for j in range(20)]), raw)
    f.close()
    scan.close()


def _epie(source, corners: np.ndarray, epochs: int) -> torch.Tensor:
    """A plain ePIE (Maiden & Rodenburg 2009) reading its patterns only through ``source``:
    ``visits`` (stored rows) and ``amplitudes`` on each row; returns the object."""
    from ptyframe.data.counts import amplitudes
    from ptyframe.physics.projection import detector_delta

    yy, xx = np.mgrid[:M, :M] - M / 2
    probe = torch.from_numpy(np.exp(-(yy**2 + xx**2) / 20.0) * 8.0 + 0j).to(torch.complex64)
    shape = corners.max(0) + M
    obj = torch.ones(tuple(int(v) for v in shape), dtype=torch.complex64)
    for epoch in range(epochs):
        for j, row in source.visits(source.order(11, epoch)):
            a, v = amplitudes(torch.from_numpy(row)[None], source.rule)
            y, x = (int(c) for c in corners[j])
            patch = obj[y : y + M, x : x + M]
            o = patch.clone()
            wave = torch.fft.fft2(o * probe, norm="ortho")
            d, _ = detector_delta(wave[None, None], a, v if source.has_unmeasured else None)
            dpsi = torch.fft.ifft2(d[0, 0], norm="ortho")
            patch.add_(probe.conj() * dpsi, alpha=1.0 / float(probe.abs().square().max()))
            probe.add_(o.conj() * dpsi, alpha=0.5 / float(o.abs().square().max()))
    return obj


def test_a_streamed_epie_gives_the_bits_of_an_in_memory_one(tmp_path, registry):
    """An ePIE loop that reads its patterns through a source gives the same object bits
    streamed (blocks of 6 read ahead) as in memory with the same blocks, on uint16 counts
    with a shared mask.

    Would catch: any row handed out late, early or from a recycled buffer, or an order
    that differs between the two sources (what the engines will rely on).
    """
    raw = _counts(40, 9)
    path = _write(tmp_path / "e.h5", raw)
    ds = build_dataset(read_scan(path, registry), DetectorOptions(mask="/bad", check_field=False))
    corners = np.round(ds.geometry.positions_px).astype(int)
    mem = open_source(ds, block_patterns=6)
    st = open_source(ds, stream=True, block_patterns=6)
    assert isinstance(st, StreamedSource) and st.rule.mask is not None
    a, b = _epie(mem, corners, 3), _epie(st, corners, 3)
    assert torch.equal(a, b)
    assert float((a - 1).abs().max()) > 1e-3  # the loop did change the object
