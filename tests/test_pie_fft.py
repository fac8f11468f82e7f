"""The fused PIE sweep's planned transforms (pie_fft): FFTW and torch.fft give the same sweep."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ptyframe.data.measurements import Measurements
from ptyframe.engines import kernels, pie_fft
from ptyframe.engines.backend import fftw_available, numba_available
from ptyframe.engines.pie import EpieConfig, PieEngine, RpieConfig
from ptyframe.initial import InitConfig, initial_state

from synth import make_dataset

BACKENDS = ["torch"] + (["fftw"] if fftw_available() else [])
needs_numba = pytest.mark.skipif(not numba_available(), reason="numba not installed")


@pytest.fixture
def fft_backend(request):
    return request.param


@pytest.mark.parametrize("fft_backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_window_transforms_are_the_unscaled_dfts(fft_backend, dtype):
    g = torch.Generator().manual_seed(3)
    w = pie_fft.WindowFFT((2, 12, 10), dtype, subpixel=True, kind=fft_backend)
    assert w.kind == fft_backend
    tol = 1e-4 if dtype == torch.complex64 else 1e-10
    x = torch.randn(2, 12, 10, generator=g, dtype=dtype)
    n = 12 * 10
    w.psi_t.copy_(x)
    w.forward()  # D x
    assert torch.allclose(w.wave_t, torch.fft.fft2(x), atol=tol * n)
    w.inverse()  # D^H D x = N x
    assert torch.allclose(w.psi_t, n * x, atol=tol * n)
    w.spec_t.copy_(x)
    w.shift()  # D^H x = N ifft2(x)
    assert torch.allclose(w.shifted_t, n * torch.fft.ifft2(x), atol=tol * n)
    w.wave_t.copy_(x)
    w.fold()
    assert torch.allclose(w.spec_t, torch.fft.fft2(x), atol=tol * n)


def _sweeps(ds, meas, cfg, fused, modes=1, dtype="complex64", fft="auto"):
    st = initial_state(InitConfig(probe_modes=modes), ds, meas, dtype=dtype)
    eng = PieEngine(
        replace(cfg, backend="numba" if fused else "torch", fft=fft if fused else "auto")
    )
    eng.prepare(meas, st, seed=0)
    assert eng.backend.fused == fused and (not fused or eng.backend.fft == fft)
    errs = [r.data_error for r in eng.iterate()]
    return st, errs


@needs_numba
@pytest.mark.parametrize("fft_backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("rule", ["epie", "rpie"])
@pytest.mark.parametrize("jitter", [0.0, 0.8])
def test_fused_sweep_on_each_backend_equals_the_torch_path(fft_backend, rule, jitter):
    ds = make_dataset(m=16, n=4, step=5.0, jitter=jitter)
    meas = Measurements.from_dataset(ds)
    cfg = EpieConfig(epochs=3) if rule == "epie" else RpieConfig(epochs=3)
    fused, errs_f = _sweeps(ds, meas, cfg, True, fft=fft_backend)
    ref, errs_t = _sweeps(ds, meas, cfg, False)
    assert torch.allclose(fused.object, ref.object, atol=2e-4)
    scale = float(ref.probe.abs().max())
    assert torch.allclose(fused.probe, ref.probe, atol=2e-4 * scale)
    assert errs_f == pytest.approx(errs_t, rel=1e-4)


@needs_numba
@pytest.mark.parametrize("fft_backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("jitter", [0.0, 0.8])
def test_float32_fused_sweep_agrees_with_the_float64_reference(fft_backend, jitter):
    """Ten sweeps of the complex64 fused path against the torch path in complex128."""
    ds = make_dataset(m=32, n=5, step=6.0, jitter=jitter)
    meas32 = Measurements.from_dataset(ds)
    meas64 = Measurements.from_dataset(ds, dtype=torch.float64)
    cfg = EpieConfig(epochs=10, alpha=0.7, beta=0.5)
    fused, errs_f = _sweeps(ds, meas32, cfg, True, fft=fft_backend)
    ref, errs_r = _sweeps(ds, meas64, cfg, False, dtype="complex128")
    # the sweep moved the object by O(0.1-1): a wrong scale factor would differ by as much
    assert float((ref.object - initial_state(InitConfig(), ds, meas64).object).abs().max()) > 0.1
    rel_o = (fused.object.to(torch.complex128) - ref.object).abs().max() / ref.object.abs().max()
    rel_p = (fused.probe.to(torch.complex128) - ref.probe).abs().max() / ref.probe.abs().max()
    assert float(rel_o) < 1e-4 and float(rel_p) < 1e-4, (float(rel_o), float(rel_p))
    assert errs_f == pytest.approx(errs_r, rel=1e-4)


@needs_numba
@pytest.mark.skipif(not fftw_available(), reason="pyfftw not installed")
def test_two_modes_and_masked_pixels_agree_between_backends():
    ds = make_dataset(m=16, n=4, step=5.0, jitter=0.8, modes=2)
    meas = Measurements.from_dataset(ds)
    valid = torch.ones_like(meas.amplitudes, dtype=torch.bool)
    valid[:, :2, :3] = False
    meas = Measurements(meas.amplitudes, valid, meas.indices, meas.geometry)
    cfg = RpieConfig(epochs=3)
    runs = []
    for fft in ("fftw", "torch"):
        runs.append(_sweeps(ds, meas, cfg, True, modes=2, fft=fft))
    (a, ea), (b, eb) = runs
    assert torch.allclose(a.object, b.object, atol=2e-4)
    assert torch.allclose(a.probe, b.probe, atol=2e-4 * float(b.probe.abs().max()))
    assert ea == pytest.approx(eb, rel=1e-4)


@needs_numba
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_exit_wave_maxima_are_the_float_maxima_and_propagate_nan(dtype):
    k = kernels.kernels()
    rng = np.random.default_rng(4)
    obj = (rng.standard_normal((9, 11)) + 1j * rng.standard_normal((9, 11))).astype(dtype)
    p = (rng.standard_normal((5, 6)) + 1j * rng.standard_normal((5, 6))).astype(dtype)
    real = np.empty(0, dtype).real.dtype
    bits = np.uint32 if real.itemsize == 4 else np.uint64
    psi = np.empty_like(p)
    o2, p2 = np.empty(p.shape, real), np.empty(p.shape, real)
    maxima = np.zeros(2, real)

    def run():
        k.exit_wave1(obj, 2, 3, p, psi, o2, p2, o2.view(bits), p2.view(bits), maxima.view(bits))
        return maxima.copy()

    window = obj[2:7, 3:9]
    got = run()
    assert np.isclose(got[0], np.max(np.abs(window) ** 2), rtol=1e-6)
    assert np.isclose(got[1], np.max(np.abs(p) ** 2), rtol=1e-6)
    np.testing.assert_allclose(psi, window * p, rtol=1e-6)
    p[3, 4] = np.inf
    assert run()[1] == np.inf
    p[1, 2] = complex(np.nan, 0.0)
    obj[4, 5] = complex(0.0, -np.nan)
    got = run()
    assert np.isnan(got[0]) and np.isnan(got[1])
