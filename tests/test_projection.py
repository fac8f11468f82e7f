"""The batched Fourier projection, sub-pixel probe shifting, and the fused PIE kernels."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ptyframe.data.measurements import Measurements
from ptyframe.engines.backend import numba_available
from ptyframe.engines.base import visiting_order
from ptyframe.engines.pie import EpieConfig, PieEngine, RpieConfig
from ptyframe.initial import InitConfig, initial_state
from ptyframe.physics.fft import fourier_shift
from ptyframe.physics.projection import detector_delta, fourier_projection
from ptyframe.physics.subpixel import FourierProbe, PositionShifts, shift_each

from synth import make_dataset


def _case(b=3, k=2, m=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    psi = torch.randn(b, k, m, m, generator=g, dtype=torch.complex128)
    amp = torch.rand(b, m, m, generator=g, dtype=torch.float64) * 3
    return psi, amp


def _reference(psi, amp, valid):
    """Per-position, per-pixel loop of the module docstring's rule."""
    out = torch.empty_like(psi)
    errs = []
    for b in range(psi.shape[0]):
        wave = torch.fft.fft2(psi[b], norm="ortho")
        new = wave.clone()
        e = 0.0
        for i in range(psi.shape[-2]):
            for j in range(psi.shape[-1]):
                if valid is not None and not valid[b, i, j]:
                    continue
                a_model = float(torch.sqrt((wave[:, i, j].abs() ** 2).sum()))
                e += abs(a_model - float(amp[b, i, j]))
                if a_model > 0:
                    new[:, i, j] = amp[b, i, j] * wave[:, i, j] / a_model
                else:
                    new[:, i, j] = amp[b, i, j] / psi.shape[1] ** 0.5
        out[b] = torch.fft.ifft2(new, norm="ortho")
        errs.append(e)
    return out, torch.tensor(errs, dtype=torch.float64)


@pytest.mark.parametrize("k", [1, 2])
def test_projection_matches_per_position_reference_with_mask_and_zero_wave(k):
    psi, amp = _case(k=k)
    psi[1] = 0  # a zero exit wave: Xi(0) = 1
    valid = torch.rand(amp.shape, generator=torch.Generator().manual_seed(3)) > 0.2
    for v in (None, valid):
        got, err = fourier_projection(psi, amp, v)
        ref, ref_err = _reference(psi, amp, v)
        assert torch.allclose(got, ref, atol=1e-12)
        assert torch.allclose(err, ref_err, atol=1e-10)


def test_projection_distance_is_the_modulus_misfit_parseval():
    # ||psi' - psi||^2 = ||Psi' - Psi||^2 = sum (A - a)^2, and sum_k ||psi'_k||^2 = sum a^2
    psi, amp = _case(k=2)
    new, _ = fourier_projection(psi, amp)
    wave = torch.fft.fft2(psi, norm="ortho")
    a_model = wave.abs().square().sum(1).sqrt()
    dist2 = (new - psi).abs().square().sum(dim=(1, 2, 3))
    assert torch.allclose(dist2, (a_model - amp).square().sum(dim=(1, 2)), rtol=1e-10)
    power = new.abs().square().sum(dim=(1, 2, 3))
    assert torch.allclose(power, amp.square().sum(dim=(1, 2)), rtol=1e-10)


def test_masked_pixels_are_left_free_and_measured_ones_take_the_data():
    psi, amp = _case(k=1)
    valid = torch.ones_like(amp, dtype=torch.bool)
    valid[:, 2:5, 1:3] = False
    amp[~valid] = 1e6  # garbage where unmeasured
    new, err = fourier_projection(psi, amp, valid)
    w_old = torch.fft.fft2(psi, norm="ortho")[:, 0]
    w_new = torch.fft.fft2(new, norm="ortho")[:, 0]
    assert torch.allclose(w_new[~valid], w_old[~valid], atol=1e-12)
    assert torch.allclose(w_new.abs()[valid], amp[valid], atol=1e-12)
    assert float(err.max()) < 1e5  # the garbage is not in the error


def test_detector_delta_rejects_mismatched_shapes():
    psi, amp = _case()
    with pytest.raises(ValueError, match="amplitudes"):
        detector_delta(psi, amp[:, :4])


def test_fourier_probe_shifts_like_fourier_shift_and_folds_back_the_adjoint():
    g = torch.Generator().manual_seed(1)
    probe = torch.randn(2, 8, 8, generator=g, dtype=torch.complex128)
    frac = torch.rand(4, 2, generator=g, dtype=torch.float64)
    fp = FourierProbe(probe, frac)
    for j in range(4):
        ref = fourier_shift(probe, frac[j : j + 1])[0]
        assert torch.allclose(fp.shifted(j), ref, atol=1e-12)
    step = torch.randn(2, 8, 8, generator=g, dtype=torch.complex128)
    fp.add_shifted_back(2, step)
    want = probe + fourier_shift(step, -frac[2:3])[0]
    assert torch.allclose(fp.probe(), want, atol=1e-12)
    each = shift_each(step.unsqueeze(0).expand(4, 2, 8, 8), frac)
    assert torch.allclose(each[3], fourier_shift(step, frac[3:4])[0], atol=1e-12)


def test_sub_pixel_epie_epoch_matches_hand_written_shifted_probe_update():
    ds = make_dataset(m=16, n=3, step=5.0, jitter=0.7)
    meas = Measurements.from_dataset(ds, dtype=torch.float64)
    state = initial_state(InitConfig(), ds, meas, dtype="complex128")
    obj, probe = state.object[0].clone(), state.probe[0].clone()
    pos = torch.as_tensor(ds.geometry.positions_px)
    corner = torch.floor(pos)
    frac = pos - corner
    for j in visiting_order(len(pos), 5, 0):
        y, x = (int(c) for c in corner[j])
        o = obj[y : y + 16, x : x + 16].clone()
        p = fourier_shift(probe, frac[j : j + 1])[0]
        wave = torch.fft.fft2(o * p, norm="ortho")
        dpsi = torch.fft.ifft2(meas.amplitudes[j] * wave / wave.abs(), norm="ortho") - o * p
        obj[y : y + 16, x : x + 16] = o + 0.7 * p.conj() * dpsi / p.abs().max() ** 2
        probe = (
            probe + fourier_shift(0.3 * o.conj() * dpsi / o.abs().max() ** 2, -frac[j : j + 1])[0]
        )
    for fused in (True, False):
        st = state.clone()
        backend = "numba" if fused else "torch"
        cfg = EpieConfig(epochs=1, alpha=0.7, beta=0.3, center_probe=False, seed=5, backend=backend)
        eng = PieEngine(cfg)
        eng.prepare(meas, st)
        eng.step(0)
        assert torch.allclose(st.object[0], obj, atol=1e-10)
        assert torch.allclose(st.probe[0], probe, atol=1e-10)


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
@pytest.mark.parametrize("rule", ["epie", "rpie"])
@pytest.mark.parametrize("jitter", [0.0, 0.8])
@pytest.mark.parametrize("modes", [1, 2])
def test_fused_kernels_equal_the_torch_path(rule, jitter, modes):
    ds = make_dataset(m=16, n=4, step=5.0, jitter=jitter, modes=modes)
    meas = Measurements.from_dataset(ds)
    if modes == 2:  # the general kernels, with unmeasured pixels
        valid = torch.ones_like(meas.amplitudes, dtype=torch.bool)
        valid[:, :2, :3] = False
        meas = Measurements(meas.amplitudes, valid, meas.indices, meas.geometry)
    cfg = EpieConfig(epochs=3) if rule == "epie" else RpieConfig(epochs=3)
    states, errs = [], []
    for fused in (True, False):
        st = initial_state(InitConfig(probe_modes=modes), ds, meas)
        eng = PieEngine(replace(cfg, backend="numba" if fused else "torch"))
        eng.prepare(meas, st, seed=0)
        errs.append([r.data_error for r in eng.iterate()])
        states.append(st)
    assert torch.allclose(states[0].object, states[1].object, atol=2e-4)
    assert torch.allclose(
        states[0].probe, states[1].probe, atol=2e-4 * float(states[1].probe.abs().max())
    )
    assert errs[0] == pytest.approx(errs[1], rel=1e-4)


def test_position_shifts_equal_fourier_shift_and_its_adjoint():
    g = torch.Generator().manual_seed(2)
    probe = torch.randn(2, 8, 8, generator=g, dtype=torch.complex128)
    frac = torch.rand(5, 2, generator=g, dtype=torch.float64)
    shifts = PositionShifts(frac, (8, 8), torch.complex128)
    idx = torch.tensor([4, 1])
    got = shifts.shift(probe, idx)
    for b, j in enumerate(idx.tolist()):
        assert torch.allclose(got[b], fourier_shift(probe, frac[j : j + 1])[0], atol=1e-12)
    back = shifts.shift_back(got, idx)
    assert torch.allclose(back, probe.expand(2, 2, 8, 8), atol=1e-12)
