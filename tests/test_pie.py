"""ePIE / rPIE: noiseless reconstructions converge to the truth; rule details."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptyframe.data.measurements import Measurements
from ptyframe.engines.base import visiting_order
from ptyframe.engines.pie import EpieConfig, PieEngine, RpieConfig
from ptyframe.errors import ConfigError
from ptyframe.initial import InitConfig, initial_state
from ptyframe.physics.ambiguities import center_probe

from synth import aligned_nrmse, illumination, make_dataset


@pytest.fixture(scope="module")
def noiseless():
    torch.set_num_threads(1)
    return make_dataset(m=32, n=7, step=6.0, jitter=1.0)


def _run(ds, engine, init=None):
    meas = Measurements.from_dataset(ds)
    state = initial_state(init or InitConfig(), ds, meas)
    engine.prepare(meas, state, seed=0)
    reports = list(engine.iterate())
    return state, reports


@pytest.mark.parametrize(
    "rule,cfg",
    [("epie", EpieConfig(epochs=300)), ("rpie", RpieConfig(epochs=300, alpha=0.1, beta=1.0))],
)
def test_noiseless_blind_reconstruction_reaches_truth(noiseless, rule, cfg):
    state, reports = _run(noiseless, PieEngine(cfg))
    truth = noiseless.truth.object[0]
    illum = illumination(noiseless)
    err = aligned_nrmse(state.object[0].numpy(), truth, illum > 0.1 * illum.max())
    assert err < 0.02, err
    assert reports[-1].data_error < 0.2 * reports[0].data_error


def test_known_probe_object_only_converges_tightly(noiseless):
    cfg = EpieConfig(epochs=100, alpha=1.0, beta=0.2, fix_probe=True, center_probe=False)
    state, reports = _run(noiseless, PieEngine(cfg), InitConfig(probe="truth"))
    illum = illumination(noiseless)
    err = aligned_nrmse(
        state.object[0].numpy(), noiseless.truth.object[0], illum > 0.1 * illum.max(), ramp=False
    )
    assert err < 0.02, err
    truth_probe = torch.from_numpy(noiseless.truth.probe).to(state.probe)
    assert torch.allclose(
        state.probe, truth_probe, rtol=1e-4, atol=1e-4 * float(truth_probe.abs().max())
    )


def test_two_mode_data_reconstruct_with_two_modes():
    ds = make_dataset(m=32, n=7, step=6.0, jitter=1.0, modes=2)
    cfg = EpieConfig(epochs=150)
    state, reports = _run(ds, PieEngine(cfg), InitConfig(probe_modes=2))
    assert state.probe.shape[0] == 2
    assert reports[-1].data_error < 0.03, reports[-1].data_error


def test_one_epoch_matches_hand_written_epie_update():
    ds = make_dataset(m=16, n=3, step=5.0)
    meas = Measurements.from_dataset(ds, dtype=torch.float64)
    state = initial_state(InitConfig(), ds, meas, dtype="complex128")
    obj, probe = state.object[0].clone(), state.probe[0].clone()
    alpha, beta = 0.7, 0.3
    pos = ds.geometry.positions_px.astype(int)
    for j in visiting_order(len(pos), 5, 0):
        y, x = pos[j]
        o = obj[y : y + 16, x : x + 16].clone()
        psi = o * probe
        wave = torch.fft.fft2(psi, norm="ortho")
        new = meas.amplitudes[j] * wave / wave.abs()
        dpsi = torch.fft.ifft2(new, norm="ortho") - psi
        obj[y : y + 16, x : x + 16] = o + alpha * probe.conj() * dpsi / probe.abs().max() ** 2
        probe = probe + beta * o.conj() * dpsi / o.abs().max() ** 2
    eng = PieEngine(EpieConfig(epochs=1, alpha=alpha, beta=beta, center_probe=False, seed=5))
    eng.prepare(meas, state)
    eng.step(0)
    assert torch.allclose(state.object[0], obj, atol=1e-10)
    assert torch.allclose(state.probe[0], probe, atol=1e-10)


def test_unmeasured_pixels_keep_the_model_modulus():
    ds = make_dataset(m=16, n=3, step=5.0)
    meas = Measurements.from_dataset(ds, dtype=torch.float64)
    state = initial_state(InitConfig(), ds, meas, dtype="complex128")
    masked = Measurements(
        meas.amplitudes.clone(),
        torch.ones_like(meas.amplitudes, dtype=bool),
        meas.indices,
        meas.geometry,
    )
    masked.valid[:, 0, 0] = False
    masked.amplitudes[:, 0, 0] = 1e6  # garbage where unmeasured: must be ignored
    a = state.clone()
    b = state.clone()
    eng_a = PieEngine(EpieConfig(epochs=1, center_probe=False))
    eng_a.prepare(masked, a)
    eng_a.step(0)
    assert a.is_finite() and float(a.object.abs().max()) < 10
    masked.amplitudes[:, 0, 0] = 0.0
    eng_b = PieEngine(EpieConfig(epochs=1, center_probe=False))
    eng_b.prepare(masked, b)
    eng_b.step(0)
    assert torch.allclose(a.object, b.object)


def test_xi_of_zero_is_one():
    # a zero exit wave cannot be projected by z/|z|; PINE eq. 15 sets Xi(0) = 1
    ds = make_dataset(m=16, n=2, step=5.0)
    meas = Measurements.from_dataset(ds, dtype=torch.float64)
    state = initial_state(InitConfig(), ds, meas, dtype="complex128")
    state.object.zero_()
    eng = PieEngine(EpieConfig(epochs=1, center_probe=False, fix_probe=True))
    eng.prepare(meas, state)
    eng.step(0)
    assert state.is_finite() and float(state.object.abs().max()) > 0


def test_center_probe_keeps_the_model_and_centres():
    ds = make_dataset(m=16, n=3, step=5.0)
    meas = Measurements.from_dataset(ds, dtype=torch.float64)
    state = initial_state(InitConfig(), ds, meas, dtype="complex128")
    state.probe.copy_(torch.roll(state.probe, (3, -2), dims=(-2, -1)))
    assert center_probe(state) == (-3, 2)
    assert center_probe(state) == (0, 0)


def test_out_of_range_step_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="alpha"):
        EpieConfig(alpha=2.5)
    with pytest.raises(ConfigError, match="beta"):
        RpieConfig(beta=0.0)
    with pytest.raises(ConfigError, match="epochs"):
        EpieConfig(epochs=-1)


def test_visiting_order_depends_on_seed_and_epoch_only():
    assert np.array_equal(visiting_order(50, 3, 7), visiting_order(50, 3, 7))
    assert not np.array_equal(visiting_order(50, 3, 7), visiting_order(50, 3, 8))


@pytest.mark.parametrize("jitter", [0.0, 0.8])
def test_rpie_at_alpha_beta_one_is_epie_with_full_steps(jitter):
    """rPIE's denominators (1 - a)|P|^2 + a max|P|^2 become max|P|^2 at a = 1: ePIE's."""
    ds = make_dataset(m=16, n=4, step=5.0, jitter=jitter)
    meas = Measurements.from_dataset(ds, dtype=torch.float64)
    states = []
    for cfg in (
        RpieConfig(epochs=3, alpha=1.0, beta=1.0),
        EpieConfig(epochs=3, alpha=1.0, beta=1.0),
    ):
        st = initial_state(InitConfig(), ds, meas, dtype="complex128")
        eng = PieEngine(cfg)
        eng.prepare(meas, st, seed=0)
        list(eng.iterate())
        states.append(st)
    assert torch.allclose(states[0].object, states[1].object, atol=1e-10)
    assert torch.allclose(states[0].probe, states[1].probe, atol=1e-10)
