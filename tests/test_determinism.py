"""Same input, same bits: the same run in two fresh processes gives identical results.

FFTW's ``FFTW_MEASURE`` planner picks among algorithms by timing them, so two processes could
run different (equally correct) transforms whose last bits differ, and a resumed run drifted
from an uninterrupted one on machines whose timings differed from CI's. These tests start the
same reconstruction in two fresh processes at once and compare object, probe and history bit
for bit: with the FFTW plans active (skipped only where pyFFTW is absent), with torch.fft, and
with two torch threads (``threads=2``: torch's intra-op reductions split by thread count). The
resume tests (``test_first_contact.py``, ``test_reliability.py``) check the same across a
Ctrl-C or a SIGKILL, with the FFT the run recorded.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ptyframe.engines import pie_fft
from ptyframe.engines.backend import fftw_available, resolve

from plain_h5 import write_plain
from signalled import reconstruct_cmd

ESTIMATE, MEASURE = "FFTW_ESTIMATE", "FFTW_MEASURE"
needs_fftw = pytest.mark.skipif(
    not fftw_available(), reason="pyFFTW not installed (pip install 'ptyframe[fftw]')"
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("det") / "d.h5"
    write_plain(path, m=64, n=8, step=12.0)  # sub-pixel positions: all four planned DFTs
    return path


def _two_runs(data: Path, tmp_path: Path, fft: str, *extra: str, epochs: int = 8) -> list[Path]:
    """Run the same reconstruction in two fresh processes at once; return their results."""
    outs = [tmp_path / "a", tmp_path / "b"]
    procs = []
    for out in outs:
        cmd = reconstruct_cmd(data, epochs, "progress=false", f"output.dir={out}", *extra)
        if any(e.startswith("engine=") for e in extra):  # another engine: not ePIE's alpha
            cmd = [c for c in cmd if c not in ("engine=epie", "engine.alpha=0.5")]
        if fft == "torch":  # the fused sweep's transforms on torch.fft (no FFTW plans)
            cmd.append("engine.fft=torch")
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    return [out / "recon.h5" for out in outs]


def _assert_same_bits(a: Path, b: Path) -> None:
    with h5py.File(a) as fa, h5py.File(b) as fb:
        for key in ("object", "probe", "history/data_error"):
            x, y = fa[key][()], fb[key][()]
            assert x.tobytes() == y.tobytes(), f"{key} differs: max |a - b| {np.abs(x - y).max()}"


@needs_fftw
@pytest.mark.parametrize("threads", [1, 2])
def test_two_processes_with_fftw_give_the_same_bits(data, tmp_path, threads):
    """Would catch: FFT plans chosen by timing (``FFTW_MEASURE``), or an estimate plan that
    takes a timed plan's wisdom, making two runs of one command differ in the last bits."""
    a, b = _two_runs(data, tmp_path, "fftw", f"threads={threads}")
    with h5py.File(a) as f:
        assert f.attrs["engine_fft"] == "fftw" and f.attrs["engine_backend"] == "numba"
        assert f.attrs["engine_fft_planner"] == "FFTW_ESTIMATE"
        assert bool(f.attrs["deterministic"]) and int(f.attrs["torch_threads"]) == threads
    _assert_same_bits(a, b)


def test_two_processes_with_torch_fft_and_two_threads_give_the_same_bits(data, tmp_path):
    """Would catch: torch.fft (MKL or pocketfft) or torch's two-thread work splitting giving
    different bits in two processes with the same thread count."""
    a, b = _two_runs(data, tmp_path, "torch", "threads=2", epochs=3)
    with h5py.File(a) as f:
        assert f.attrs["engine_fft"] == "torch" and int(f.attrs["torch_threads"]) == 2
    _assert_same_bits(a, b)


def test_two_processes_of_a_torch_engine_on_two_threads_give_the_same_bits(data, tmp_path):
    """LSQML's batched projection and its sums are torch's own ops, split over two threads.

    Would catch: a torch reduction (sum, max, matmul) whose split over threads depends on
    anything but the thread count (timing, work stealing), making two runs differ.
    """
    a, b = _two_runs(data, tmp_path, "torch", "engine=lsqml", "threads=2", epochs=3)
    _assert_same_bits(a, b)


def _chain(forward, psi: np.ndarray, wave: np.ndarray) -> str:
    """Return a hash of 20 chained forward transforms ``wave = D psi`` of a fixed ``psi``."""
    rng = np.random.default_rng(5)
    psi[...] = rng.standard_normal(psi.shape) + 1j * rng.standard_normal(psi.shape)
    scale = np.float32(np.sqrt(np.prod(psi.shape[-2:])))
    for _ in range(20):
        forward()
        psi[...] = wave / scale
    return hashlib.sha256(wave.tobytes()).hexdigest()


def _chain_hash(fft: pie_fft.WindowFFT) -> str:
    return _chain(fft.forward, fft.psi, fft.wave)


def _entries(wisdom: tuple[bytes, ...]) -> list[list[bytes]]:
    """Return FFTW's exported wisdom as sorted entries (an import may reorder them)."""
    return [sorted(w.splitlines()) for w in wisdom]


@needs_fftw
def test_estimate_plans_ignore_the_wisdom_a_timed_plan_left():
    """FFTW plans an ``FFTW_ESTIMATE`` problem from the wisdom an ``FFTW_MEASURE`` plan of the
    same problem left in the process: the deterministic plans are made without it, and the
    process keeps its wisdom.

    Would catch: the effort flag switched to ``FFTW_ESTIMATE`` alone (a run after a timed
    plan in the same process, e.g. a benchmark or a multirun job, would then take the timed
    algorithm), or the process's wisdom lost.
    """
    import pyfftw

    shape, c64 = (1, 128, 128), torch.complex64
    saved = pyfftw.export_wisdom()
    try:
        pyfftw.forget_wisdom()
        first = _chain_hash(pie_fft.WindowFFT(shape, c64, False, "fftw", ESTIMATE))
        timed = _chain_hash(pie_fft.WindowFFT(shape, c64, False, "fftw", MEASURE))
        wisdom = _entries(pyfftw.export_wisdom())
        again = _chain_hash(pie_fft.WindowFFT(shape, c64, False, "fftw", ESTIMATE))
        assert again == first
        assert _entries(pyfftw.export_wisdom()) == wisdom  # the timed plan's wisdom is kept
        if timed != first:  # the timer chose another algorithm: FFTW's estimate takes it
            a, b = (pie_fft._buffer(shape, c64, pie_fft.ROW_PAD).numpy() for _ in range(2))
            flags = ("FFTW_ESTIMATE", "FFTW_DESTROY_INPUT")
            raw = pyfftw.FFTW(a, b, axes=(-2, -1), flags=flags, threads=1)
            assert _chain(raw.execute, a, b) == timed
    finally:
        pyfftw.forget_wisdom()
        pyfftw.import_wisdom(saved)


@needs_fftw
@pytest.mark.parametrize("deterministic", [True, False])
def test_every_planned_transform_of_a_sweep_uses_the_planner_of_its_mode(deterministic):
    """Would catch: one of the four transforms of a sub-pixel sweep planned by timing in a
    deterministic run (two processes then differ only when their timings do: rarely, so the
    two-process tests alone may pass by luck), or the opt-in mode not timing its plans."""
    want = resolve("epie", "numba", "fftw", "cpu", deterministic=deterministic).planner
    assert want == ("FFTW_ESTIMATE" if deterministic else "FFTW_MEASURE")
    w = pie_fft.WindowFFT((2, 16, 16), torch.complex64, True, "fftw", want)
    plans = [f.__self__ for f in (w.forward, w.inverse, w.shift, w.fold)]
    assert [p.flags[0] for p in plans] == [want] * 4
    other = MEASURE if deterministic else ESTIMATE
    assert w.matches((2, 16, 16), torch.complex64, True, "fftw", want)
    assert not w.matches((2, 16, 16), torch.complex64, True, "fftw", other)


def test_the_switch_reaches_the_engine_and_recon_h5(tmp_path):
    """Would catch: ``deterministic=false`` lost between the run config and the engine's
    plans, or a run whose ``recon.h5`` does not say which arithmetic it ran."""
    from ptyframe.plugins import default_registry
    from ptyframe.registry import BuildContext

    reg = default_registry()
    for det in (True, False):
        eng = reg.build("engine", {"name": "epie"}, BuildContext(reg, deterministic=det))
        assert eng.deterministic is det
    path = tmp_path / "d.h5"
    write_plain(path)
    import ptyframe

    res = ptyframe.reconstruct(path, "epie", epochs=2, out_dir=tmp_path / "r", deterministic=False)
    with h5py.File(res.out_dir / "recon.h5") as f:
        assert not bool(f.attrs["deterministic"])
        assert "deterministic: false" in f.attrs["config"]
        if fftw_available():
            assert f.attrs["engine_fft"] == "fftw"
            assert f.attrs["engine_fft_planner"] == "FFTW_MEASURE"
        else:
            assert f.attrs["engine_fft"] == "torch"
