"""Engines reading their patterns through the feed: the same bits streamed, as counts, as
float amplitudes (#26); the feed's thread; a resume with another block size refused."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ptyframe.compose import build_engine
from ptyframe.data import feed
from ptyframe.data.measurements import Measurements
from ptyframe.data.patterns import MemorySource
from ptyframe.data.reader import read_scan
from ptyframe.data.scanfile import DetectorOptions, build_dataset
from ptyframe.data.stream import PatternReadError, StreamedSource, open_source
from ptyframe.engines.backend import numba_available
from ptyframe.errors import ConfigError
from ptyframe.initial import InitConfig, initial_state
from ptyframe.registry import BuildContext

from plain_h5 import write_plain
from registered import PTYCHO_ENGINES, REGISTRY, backends

M, BLOCK = 32, 10
NUMBA = ["numba"] if numba_available() else []


def _write(path, dtype: str, integer: bool = False):
    """A 6 x 6 scan of Poisson counts stored as ``dtype``, a bad-pixel mask at ``/bad``."""

    def mutate(parts: dict) -> None:
        rng = np.random.default_rng(4)
        inten = parts["exchange/data"]
        scale = 5e4 / inten.sum(axis=(-2, -1)).mean()
        parts["exchange/data"] = rng.poisson(inten * scale).astype(dtype)
        bad = np.zeros((M, M), dtype=np.uint8)
        bad[3, 5] = bad[20, 7:9] = 1
        parts["bad"] = bad
        if integer:
            parts["metadata/probe_pos_px"] = np.round(parts["metadata/probe_pos_px"])

    write_plain(path, mutate, m=M, n=6, step=6.0)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("streamed")
    return {
        "uint16": _write(folder / "u16.h5", "uint16"),
        "float32": _write(folder / "f32.h5", "float32"),
        "integer": _write(folder / "int.h5", "uint16", integer=True),
    }


def _dataset(path, mask: bool = False):
    opts = DetectorOptions(mask="/bad") if mask else DetectorOptions()
    return build_dataset(read_scan(path, REGISTRY), opts)


def _engine(name: str, backend: str, epochs: int, **options):
    fields = {"name": name, "epochs": epochs, "backend": backend, **options}
    return build_engine(SimpleNamespace(engine=fields), REGISTRY, BuildContext(REGISTRY))


def _run(name: str, backend: str, data, start, epochs: int = 3, **options):
    """Run ``epochs`` of engine ``name`` from a copy of ``start`` on ``data``."""
    state = start.clone()
    eng = _engine(name, backend, epochs, **options)
    eng.prepare(data, state, seed=7)
    errors = [eng.step(e).data_error for e in range(epochs)]
    if isinstance(data, StreamedSource):  # every row came from the block in memory
        assert data._sync is None, "rows were read outside the streamed blocks"
        data.close()
    return state, errors, eng


def _same(a, b) -> None:
    (sa, ea, _), (sb, eb, _) = a, b
    assert torch.equal(sa.object, sb.object)
    assert torch.equal(sa.probe, sb.probe)
    assert ea == eb


ENGINES = [
    *[("epie", b, {}) for b in (*NUMBA, "torch")],
    *[("mpie", b, {"momentum_every": 7}) for b in (*NUMBA, "torch")],
    *[("lsqml", b, {"batch_size": 4}) for b in (*NUMBA, "torch")],
    *[("minibatch_pie", b, {"batch_size": 4, "batching": g}) for b in NUMBA or ["torch"]
      for g in ("sparse", "random", "compact")],
]  # fmt: skip


@pytest.mark.parametrize("name, backend, options", ENGINES)
@pytest.mark.parametrize("case", ["uint16", "float32", "integer", "masked"])
def test_streamed_counts_and_float_amplitudes_give_the_same_bits(
    files, name, backend, options, case
):
    """An engine run on the same patterns held three ways with the same blocks -- float
    amplitudes in memory (``Measurements``), the stored counts in memory (``MemorySource``,
    amplitudes formed ahead by the feed's thread) and streamed from the file in blocks of
    10 (``StreamedSource``) -- gives the same object, probe and data-error bits; with one
    block, the counts give the bits of the float amplitudes too. Cases: uint16 and float32
    files, whole-pixel positions, a bad-pixel mask (the masked kernels).

    Would catch: a row fed late, early or from a recycled buffer, amplitudes formed
    differently from the float path (a last-bit change in the square root), an order or a
    grouping that differs between the ways of holding the data, groups that cross a block
    (a streamed batch read from a block no longer in memory), or a kernel chosen
    differently for counts (masked patterns).
    """
    path = files["float32" if case == "float32" else "integer" if case == "integer" else "uint16"]
    ds = _dataset(path, mask=case == "masked")
    floats = Measurements.from_dataset(ds, block_patterns=BLOCK)
    start = initial_state(InitConfig(), ds, floats)
    ref = _run(name, backend, floats, start, **options)
    held = [
        MemorySource.load(ds, block_patterns=BLOCK),
        open_source(ds, stream=True, block_patterns=BLOCK),
    ]
    assert isinstance(held[1], StreamedSource)
    assert held[0].has_unmeasured == floats.has_unmeasured == (case == "masked")
    for data in held:
        _same(ref, _run(name, backend, data, start, **options))
    one = Measurements.from_dataset(ds)
    _same(
        _run(name, backend, one, start, **options),
        _run(name, backend, MemorySource.load(ds), start, **options),
    )
    assert not torch.equal(ref[0].object, start.object)  # the engine did change the object
    assert not [t for t in threading.enumerate() if t.name.startswith("ptyframe-")]


STREAMING = [n for n in PTYCHO_ENGINES if REGISTRY.get("engine", n).factory.capabilities.streams]


def test_the_registry_has_engines_that_stream_and_engines_that_do_not():
    """The lists come from the registry (``Capabilities.streams``): not empty by accident."""
    assert {"epie", "rpie", "mpie", "pine", "lsqml", "minibatch_pie"} <= set(STREAMING)
    assert "autodiff" in PTYCHO_ENGINES and "autodiff" not in STREAMING


@pytest.mark.parametrize("name, backend", [(n, b) for n in STREAMING for b in backends(n)])
def test_every_engine_that_streams_gives_the_bits_of_memory_streamed(files, name, backend):
    """Every registered engine declaring ``Capabilities.streams``, with its defaults on every
    backend it declares: streamed in blocks of 10 from a uint16 file, the bits of float
    amplitudes in memory with the same blocks.

    Would catch: an engine that declares the capability but reads the patterns some other
    way (the whole amplitude array, a block no longer in memory), so that streaming changes
    its result or fails.
    """
    ds = _dataset(files["uint16"])
    floats = Measurements.from_dataset(ds, block_patterns=BLOCK)
    start = initial_state(InitConfig(), ds, floats)
    ref = _run(name, backend, floats, start, 2)
    _same(ref, _run(name, backend, open_source(ds, stream=True, block_patterns=BLOCK), start, 2))


def test_blocks_change_the_order_and_one_block_is_todays(files):
    """Blocks of 10 visit each block's patterns together, in scan order; one block is the
    permutation of ``visiting_order`` (in-memory runs keep their bits).

    Would catch: a test above that compared one-block runs only (blocks never exercised).
    """
    from ptyframe.engines.base import visiting_order

    ds = _dataset(files["uint16"])
    order = Measurements.from_dataset(ds, block_patterns=BLOCK).order(7, 2)
    assert [set(order[s : s + BLOCK] // BLOCK) for s in range(0, 36, BLOCK)] == [
        {b} for b in range(4)
    ]
    np.testing.assert_array_equal(
        Measurements.from_dataset(ds).order(7, 2), visiting_order(36, 7, 2)
    )


@pytest.mark.parametrize("batching", ["random", "compact", "sparse"])
def test_minibatch_groups_stay_inside_blocks_and_one_block_is_one_grouping(batching):
    """Blocks of 10: every group of an epoch lies in one block, the blocks come in scan
    order and every position is visited once; one block: the groups of the whole scan in
    the order the generator seeded by ``(seed, epoch)`` draws them.

    Would catch: a group reaching into a block no longer in memory, a position left out or
    visited twice, or a one-block plan that differs from the unblocked one (in-memory runs
    would change their bits).
    """
    from ptyframe.engines.minibatch import BatchPlan, compact_groups, sparse_groups

    pos = np.stack(np.meshgrid(np.arange(6) * 6.0, np.arange(6) * 6.0), -1).reshape(-1, 2)
    plan = BatchPlan(pos, (M, M), batching, 4, 3, block_patterns=BLOCK)
    blocks = plan.epoch_blocks(5)
    assert len(blocks) == 4
    for b, groups in enumerate(blocks):
        for g in groups:
            assert set((np.asarray(g) // BLOCK).tolist()) == {b}
    flat = np.concatenate([g for groups in blocks for g in groups])
    assert sorted(flat.tolist()) == list(range(36))
    one = BatchPlan(pos, (M, M), batching, 4, 3).epoch(5)
    rng = np.random.default_rng([3, 5])
    if batching == "random":
        order = rng.permutation(36)
        want = [order[i : i + 4] for i in range(0, 36, 4)]
    else:
        fixed = (
            compact_groups(pos, 4, 3) if batching == "compact" else sparse_groups(pos, (M, M), 4, 3)
        )
        want = [fixed[i] for i in rng.permutation(len(fixed))]
    assert [g.tolist() for g in one] == [g.tolist() for g in want]


def _feed_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("ptyframe-feed", "ptyframe-prefetch")]


def test_the_feed_thread_stops_at_the_end_on_close_and_on_error(tmp_path, files):
    """The feed's thread (and the stream's under it) ends with the sweep, when the consumer
    stops early, and on a damaged chunk, whose ``PatternReadError`` (naming the pattern and
    the file) is raised in the consumer's thread after the rows before it.

    Would catch: a thread left blocked on a buffer that never comes back (one leaked per
    sweep), an error lost in the thread (a hang or zeros fed to the sweep), or rows fed
    after the error.
    """
    import h5py
    from test_stream import _counts
    from test_stream import _write as write_chunked

    ds = _dataset(files["uint16"])
    src = open_source(ds, stream=True, block_patterns=BLOCK)
    got = [j for j, _, _ in feed.rows(src, src.order(0, 0))]
    assert sorted(got) == list(range(36))
    assert (
        feed.amplitude_feed(src).thread is not None
        and not feed.amplitude_feed(src).thread.is_alive()
    )
    rows = feed.rows(src, src.order(0, 1))
    for k, _ in enumerate(rows):
        if k == 12:
            break
    rows.close()
    assert not feed.amplitude_feed(src).thread.is_alive() and not _feed_threads()
    src.close()

    path = write_chunked(tmp_path / "bad.h5", _counts(30), compression="gzip")
    with h5py.File(path, "r") as f:
        info = f["exchange/data"].id.get_chunk_info_by_coord((0, 17, 0, 0))
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 3)
        fh.write(b"\x00\xff" * 8)
    bad = build_dataset(
        read_scan(path, REGISTRY), DetectorOptions(check_values=False, check_field=False)
    )
    from ptyframe.data.counts import frame_reader
    from ptyframe.data.patterns import source_info

    reader = frame_reader(bad)
    st = StreamedSource(reader, source_info(reader, bad, np.arange(30), 0), 5, has_unmeasured=False)
    seen = []
    with pytest.raises(PatternReadError) as err:
        for j, _, _ in feed.rows(st, np.arange(30)):
            seen.append(j)
    assert "pattern 17" in str(err.value) and str(path) in str(err.value)
    assert seen == list(range(15))
    assert not feed.amplitude_feed(st).thread.is_alive() and not _feed_threads()


def test_a_resume_with_another_block_size_is_refused(files):
    """A state saved visiting blocks of 10 does not load into a run of blocks of 12: one
    line naming the setting that resumes it.

    Would catch: a resume that silently continues in another visiting order (different
    bits from the uninterrupted run, with nothing said).
    """
    ds = _dataset(files["uint16"])
    start = initial_state(InitConfig(), ds, Measurements.from_dataset(ds))
    _, _, eng = _run("epie", "torch", Measurements.from_dataset(ds, block_patterns=BLOCK), start, 1)
    saved = eng.state_dict()
    assert saved["block_patterns"] == BLOCK
    other = _engine("epie", "torch", 1)
    other.prepare(Measurements.from_dataset(ds, block_patterns=12), start.clone(), seed=7)
    with pytest.raises(ConfigError, match=f"data.block_patterns={BLOCK}") as err:
        other.load_state_dict(saved)
    assert "\n" not in str(err.value)
    same = _engine("epie", "torch", 1)
    same.prepare(open_source(ds, stream=True, block_patterns=BLOCK), start.clone(), seed=7)
    same.load_state_dict(saved)


def test_a_file_damaged_mid_run_stops_it_with_the_last_good_state_saved(tmp_path, files):
    """A streamed file cut short after epoch 2: one error line naming the file and where the
    last good state is saved; ``recon.h5`` (status interrupted, 2 epochs) and the checkpoint
    are written; with the file restored, ``resume=true`` ends with the bits of a run that was
    never interrupted.

    Would catch: a run that dies with nothing saved (status failed), a half-swept object
    saved as the last state, or a resume that does not continue where the run stopped.
    """
    import shutil

    import h5py

    import ptyframe.runner
    from ptyframe.callbacks.base import Callback

    path = tmp_path / "live.h5"
    shutil.copy(files["uint16"], path)

    def cfg(out, **extra):
        data = {"name": "file", "path": str(path), "stream": "true", "block_patterns": BLOCK}
        return {
            "data": data,
            "engine": {"name": "epie", "epochs": 5},
            "metrics": {"every": 0},
            "output": {"dir": str(out), "images": False, "checkpoint_every": 0},
            "progress": False,
            **extra,
        }

    class Damage(Callback):
        def on_epoch_end(self, run, report) -> None:
            if report.epoch == 1:
                with open(path, "r+b") as fh:
                    fh.truncate(path.stat().st_size // 2)

    ref = ptyframe.runner.run(cfg(tmp_path / "ref"))
    out = tmp_path / "run"
    with pytest.raises(PatternReadError) as err:
        ptyframe.runner.run(cfg(out), callbacks=[Damage()])
    msg = str(err.value)
    assert str(path) in msg and "epoch 2" in msg and str(out / "recon.h5") in msg
    assert "\n" not in msg
    with h5py.File(out / "recon.h5") as f:
        assert f.attrs["status"] == "interrupted" and len(f["history/data_error"]) == 2
    assert (out / "checkpoint.h5").exists()
    shutil.copy(files["uint16"], path)
    res = ptyframe.runner.run(cfg(out, resume=True))
    assert res.status == "finished" and len(res.history.epochs) == 5
    assert np.array_equal(res.object, ref.object) and np.array_equal(res.probe, ref.probe)


@pytest.mark.parametrize("name", ["epie", "lsqml"])
def test_streamed_patterns_feed_a_run_on_a_device(files, name):
    """On a (virtual) GPU the patterns stay on the host and go to the device a position
    (ePIE's torch sweep) or a minibatch (LSQML) at a time, from a stream of uint16 counts:
    the state stays on the device and ends with the bits of the same run on the CPU.

    Would catch: a host row mixed into device arithmetic, or a device run that reads the
    patterns another way than the CPU one.
    """
    from virtual_cuda import VirtualCuda

    ds = _dataset(files["uint16"], mask=True)
    floats = Measurements.from_dataset(ds, block_patterns=BLOCK)
    start = initial_state(InitConfig(), ds, floats)
    ref, _, _ = _run(name, "torch", floats, start, 2)
    with VirtualCuda() as vc:
        state = start.clone()
        state.object, state.probe = state.object.to("cuda"), state.probe.to("cuda")
        eng = _engine(name, "auto", 2)
        eng.prepare(open_source(ds, stream=True, block_patterns=BLOCK), state, seed=7)
        for e in range(2):
            eng.step(e)
        assert vc.on_device(state.object) and vc.on_device(state.probe)
        obj, probe = state.object.cpu(), state.probe.cpu()
    assert torch.equal(obj, ref.object) and torch.equal(probe, ref.probe)
