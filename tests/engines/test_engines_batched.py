"""mPIE, minibatch PIE and LSQML: hand-written updates on tiny cases, blind convergence."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ptyframe.data.measurements import Measurements
from ptyframe.engines.base import visiting_order
from ptyframe.engines.lsqml import LsqmlConfig, LsqmlEngine, poisson_step
from ptyframe.engines.minibatch import (
    BatchedWaves,
    compact_groups,
    gather_windows,
    scatter_windows,
    sparse_groups,
)
from ptyframe.engines.minibatch_pie import MinibatchPieConfig, MinibatchPieEngine
from ptyframe.engines.mpie import MpieConfig, MpieEngine
from ptyframe.engines.pie import EpieConfig, PieEngine
from ptyframe.engines.scan import ScanWindows
from ptyframe.errors import ConfigError
from ptyframe.initial import InitConfig, initial_state
from ptyframe.physics.patches import extract_patches, scatter_add_patches
from ptyframe.physics.subpixel import shift_each

from synth import aligned_nrmse, illumination, make_dataset


def _tiny(jitter: float = 0.0):
    ds = make_dataset(m=16, n=3, step=5.0, jitter=jitter)
    meas = Measurements.from_dataset(ds, dtype=torch.float64)
    state = initial_state(InitConfig(), ds, meas, dtype="complex128")
    return ds, meas, state


def _modulus_delta(obj, probe, y, x, a):
    o = obj[y : y + 16, x : x + 16].clone()
    psi = o * probe
    wave = torch.fft.fft2(psi, norm="ortho")
    return o, torch.fft.ifft2(a * wave / wave.abs(), norm="ortho") - psi


@pytest.mark.parametrize("fused", [True, False])
def test_mpie_epochs_match_hand_written_rpie_steps_and_momentum(fused):
    """Two sweeps of nine positions with the momentum every 4 positions, counted on across
    the sweeps (counts 4, 8, 12, 16): catches a wrong rPIE step, momentum rule, or a count that
    restarts each sweep (which, on a scan smaller than the period, never fires)."""
    ds, meas, state = _tiny()
    obj, probe = state.object[0].clone(), state.probe[0].clone()
    buf_o, buf_p = obj.clone(), probe.clone()
    v_o, v_p = torch.zeros_like(obj), torch.zeros_like(probe)
    pos = ds.geometry.positions_px.astype(int)
    orders = [visiting_order(len(pos), 5, e) for e in range(2)]
    for count, j in enumerate(np.concatenate(orders), 1):
        y, x = pos[j]
        o, dpsi = _modulus_delta(obj, probe, y, x, meas.amplitudes[j])
        p2, o2 = probe.abs() ** 2, o.abs() ** 2
        obj[y : y + 16, x : x + 16] = o + 0.25 * probe.conj() * dpsi / (0.9 * p2 + 0.1 * p2.max())
        probe = probe + 0.25 * o.conj() * dpsi / (0.9 * o2 + 0.1 * o2.max())
        if count % 4 == 0:
            v_o = 0.7 * v_o + obj - buf_o
            obj = obj + 0.3 * v_o
            buf_o = obj.clone()
            v_p = 0.7 * v_p + probe - buf_p
            probe = probe + 0.3 * v_p
            buf_p = probe.clone()
    cfg = MpieConfig(  # PtyLab's values of alpha, beta and feedback, as written above
        epochs=2, momentum_every=4, center_probe=False, seed=5, alpha=0.1, beta=0.1, feedback=0.3
    )
    eng = MpieEngine(replace(cfg, backend="numba" if fused else "torch"))
    eng.prepare(meas, state)
    eng.step(0)
    eng.step(1)
    assert torch.allclose(state.object[0], obj, atol=1e-10)
    assert torch.allclose(state.probe[0], probe, atol=1e-10)


@pytest.mark.parametrize("jitter", [0.0, 0.7])
def test_minibatch_pie_of_batch_one_is_sequential_epie(jitter):
    ds, meas, state = _tiny(jitter)
    a, b = state.clone(), state.clone()
    kw = dict(epochs=2, alpha=0.7, beta=0.3, center_probe=False, seed=5)
    seq = PieEngine(EpieConfig(**kw))
    seq.prepare(meas, a)
    mb = MinibatchPieEngine(MinibatchPieConfig(rule="epie", batch_size=1, batching="random", **kw))
    mb.prepare(meas, b)
    for e in range(2):
        ra, rb = seq.step(e), mb.step(e)
        assert ra.data_error == pytest.approx(rb.data_error, rel=1e-9)
    assert torch.allclose(a.object, b.object, atol=1e-10)
    assert torch.allclose(a.probe, b.probe, atol=1e-10)


def test_minibatch_epie_sparse_groups_take_the_sequential_object_steps():
    """In a group of non-overlapping windows the summed ePIE step is each position's own."""
    ds = make_dataset(m=16, n=4, step=9.0)
    meas = Measurements.from_dataset(ds, dtype=torch.float64)
    state = initial_state(InitConfig(), ds, meas, dtype="complex128")
    obj, probe = state.object[0].clone(), state.probe[0].clone()
    cfg = MinibatchPieConfig(epochs=1, fix_probe=True, center_probe=False)
    assert (cfg.rule, cfg.batching, cfg.alpha) == ("epie", "sparse", 0.25)  # the defaults
    eng = MinibatchPieEngine(cfg)
    eng.prepare(meas, state)
    groups = eng.plan.epoch(0)
    assert max(len(g) for g in groups) > 1  # some groups hold several positions
    pos = ds.geometry.positions_px.astype(int)
    p_max = float((probe.abs() ** 2).max())
    for g in groups:  # sequential ePIE object steps, one position after another
        for j in g:
            y, x = pos[j]
            o, dpsi = _modulus_delta(obj, probe, y, x, meas.amplitudes[j])
            obj[y : y + 16, x : x + 16] = o + 0.25 * probe.conj() * dpsi / p_max
    eng.step(0)
    assert torch.allclose(state.object[0], obj, atol=1e-10)


def test_minibatch_rpie_whole_scan_group_matches_hand_written_sums():
    ds, meas, state = _tiny()
    obj, probe = state.object[0].clone(), state.probe[0].clone()
    pos = ds.geometry.positions_px.astype(int)
    n_o, w_o = torch.zeros_like(obj), torch.zeros_like(obj.real)
    n_p, w_p = torch.zeros_like(probe), torch.zeros_like(probe.real)
    for j, (y, x) in enumerate(pos):
        o, chi = _modulus_delta(obj, probe, y, x, meas.amplitudes[j])
        n_o[y : y + 16, x : x + 16] += probe.conj() * chi
        w_o[y : y + 16, x : x + 16] += probe.abs() ** 2
        n_p += o.conj() * chi
        w_p += o.abs() ** 2
    alpha, beta = 0.2, 0.5
    obj = obj + n_o / ((1 - alpha) * w_o + alpha * w_o.max())
    probe = probe + n_p / ((1 - beta) * w_p + beta * w_p.max())
    cfg = MinibatchPieConfig(
        epochs=1,
        rule="rpie",
        alpha=alpha,
        beta=beta,
        batch_size=len(pos),
        batching="random",
        center_probe=False,
    )
    eng = MinibatchPieEngine(cfg)
    eng.prepare(meas, state)
    eng.step(0)
    assert torch.allclose(state.object[0], obj, atol=1e-10)
    assert torch.allclose(state.probe[0], probe, atol=1e-10)


def test_lsqml_gaussian_group_matches_hand_written_directions_and_steps():
    ds, meas, state = _tiny()
    obj, probe = state.object[0].clone(), state.probe[0].clone()
    pos = ds.geometry.positions_px.astype(int)
    num, w_o = torch.zeros_like(obj), torch.zeros_like(obj.real)
    n_p, w_p = torch.zeros_like(probe), torch.zeros_like(probe.real)
    chis, os_ = [], []
    for j, (y, x) in enumerate(pos):
        o, chi = _modulus_delta(obj, probe, y, x, meas.amplitudes[j])
        chis.append(chi)
        os_.append(o)
        num[y : y + 16, x : x + 16] += probe.conj() * chi
        w_o[y : y + 16, x : x + 16] += probe.abs() ** 2
        n_p += o.conj() * chi
        w_p += o.abs() ** 2
    d_o = num / (w_o + 0.1 * w_o.max())
    d_p = n_p / (w_p + 0.1 * w_p.max())
    mats, rhss = [], []
    for j, (y, x) in enumerate(pos):
        u = d_o[y : y + 16, x : x + 16] * probe
        v = os_[j] * d_p
        mats.append(
            torch.tensor(
                [
                    [(u.abs() ** 2).sum(), (u.conj() * v).real.sum()],
                    [(u.conj() * v).real.sum(), (v.abs() ** 2).sum()],
                ],
                dtype=torch.float64,
            )
        )
        rhss.append(torch.stack([(u.conj() * chis[j]).real.sum(), (v.conj() * chis[j]).real.sum()]))
    mat = torch.stack(mats)
    diag = torch.diagonal(mat, dim1=-2, dim2=-1).mean(0)  # Tikhonov: 1e-6 x the mean diagonal
    mat = mat + 1e-6 * torch.diag(diag)
    steps = [torch.linalg.solve(a, b).clamp_min(0) for a, b in zip(mat, rhss, strict=True)]
    a_o, a_p = torch.stack(steps).mean(0).tolist()
    assert 0.1 < a_o < 3 and 0.1 < a_p < 3  # a sensible least-squares step, not 0 or huge
    obj = obj + 0.9 * a_o * d_o
    probe = probe + 0.9 * a_p * d_p
    cfg = LsqmlConfig(  # d_O = 0.1 as written above
        epochs=1,
        batching="random",
        batch_size=len(pos),
        center_probe=False,
        momentum=0.0,
        object_reg=0.1,
    )
    eng = LsqmlEngine(cfg)
    eng.prepare(meas, state)
    eng.step(0)
    assert torch.allclose(state.object[0], obj, atol=1e-9)
    assert torch.allclose(state.probe[0], probe, atol=1e-9)


def test_poisson_exit_wave_step_minimises_the_poisson_likelihood():
    g = torch.Generator().manual_seed(0)
    wave = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.complex128)
    inten = torch.poisson(3.0 * wave.abs().square()[:, 0], generator=g)
    _, alpha = poisson_step(wave, inten, None)
    a2 = wave.abs().square()[:, 0]
    xi = 1 - inten / a2

    def nll(a: torch.Tensor) -> torch.Tensor:
        model = a2 * (1 - a[:, None, None] * xi) ** 2
        return (model - inten * torch.log(model)).sum(dim=(-2, -1))

    for d in (-0.01, 0.01):
        trial = (alpha + d).clamp(0, 1)
        assert bool((nll(alpha) <= nll(trial) + 1e-9).all())
    assert bool(((alpha > 0) & (alpha < 1)).any())


def test_groups_sparse_do_not_overlap_compact_partition():
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 100, (80, 2))
    sparse = sparse_groups(pos, (16, 16), 6, seed=1)
    assert sorted(np.concatenate(sparse).tolist()) == list(range(80))
    for g in sparse:
        assert len(g) <= 6
        c = np.floor(pos[g]).astype(int)
        d = np.abs(c[:, None] - c[None])
        off = ~np.eye(len(g), dtype=bool)
        assert np.all(((d[..., 0] >= 16) | (d[..., 1] >= 16))[off])
    compact = compact_groups(pos, 10, seed=1)
    assert sorted(np.concatenate(compact).tolist()) == list(range(80))
    spread = np.mean([pos[g].std(0).mean() for g in compact])
    assert spread < 0.6 * pos.std(0).mean()  # clusters are local


@pytest.fixture(scope="module")
def noiseless():
    torch.set_num_threads(1)
    return make_dataset(m=32, n=7, step=6.0, jitter=1.0)


@pytest.mark.parametrize(
    "engine",
    [
        lambda: MpieEngine(MpieConfig(epochs=200)),
        lambda: MinibatchPieEngine(MinibatchPieConfig(epochs=300)),
        lambda: LsqmlEngine(LsqmlConfig(epochs=200, batching="compact", batch_size=8)),
        lambda: LsqmlEngine(
            LsqmlConfig(epochs=200, batching="compact", batch_size=8, likelihood="poisson")
        ),
    ],
    ids=["mpie", "minibatch_pie", "lsqml", "lsqml_poisson"],
)
def test_blind_noiseless_reconstruction_reaches_truth(noiseless, engine):
    eng = engine()
    meas = Measurements.from_dataset(noiseless)
    state = initial_state(InitConfig(), noiseless, meas)
    eng.prepare(meas, state, seed=0)
    reports = list(eng.iterate())
    illum = illumination(noiseless)
    truth = noiseless.truth.object[0]
    err = aligned_nrmse(state.object[0].numpy(), truth, illum > 0.1 * illum.max())
    assert err < 0.03, err
    assert reports[-1].data_error < 0.2 * reports[0].data_error


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="lsqml.likelihood"):
        LsqmlConfig(likelihood="l2")
    with pytest.raises(ConfigError, match="batching"):
        MinibatchPieConfig(batching="clumps")
    with pytest.raises(ConfigError, match="lsqml.friction"):
        LsqmlConfig(friction=1.0)
    with pytest.raises(ConfigError, match="momentum_every"):
        MpieConfig(momentum_every=0)


def test_epoch_momentum_extrapolates_the_epoch_change():
    # first epoch: v = x1 - x0, so x = x1 + gain (x1 - x0) (mPIE eqs. 8-9 with T = one epoch)
    ds, meas, state = _tiny()
    kw = dict(epochs=1, batching="random", batch_size=4, center_probe=False, seed=3)
    plain, moved = state.clone(), state.clone()
    a = LsqmlEngine(LsqmlConfig(momentum=0.0, **kw))
    a.prepare(meas, plain)
    a.step(0)
    b = LsqmlEngine(LsqmlConfig(momentum=0.5, **kw))
    b.prepare(meas, moved)
    b.step(0)
    want = plain.object + 0.5 * (plain.object - state.object)
    assert torch.allclose(moved.object, want, atol=1e-10)
    want = plain.probe + 0.5 * (plain.probe - state.probe)
    assert torch.allclose(moved.probe, want, atol=1e-10)


def test_batched_waves_shift_back_sum_is_the_adjoint_sum_and_box_holds_the_windows():
    ds, meas, state = _tiny(jitter=0.7)
    pos = torch.as_tensor(ds.geometry.positions_px)
    waves = BatchedWaves(ScanWindows(pos, (16, 16), state.object.shape[-2:]))
    idx = torch.tensor([0, 2, 5, 7])
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 2, 16, 16, generator=g, dtype=torch.complex128)
    want = shift_each(x, -waves.scan.frac[idx]).sum(0)  # sum_b T_-f_b x_b, one item at a time
    assert torch.allclose(waves.shift_back_sum(x, idx), want, atol=1e-12)
    # <T_f P, x> = <P, T_-f x>: shift_back_sum is the adjoint of probes, summed
    probe = torch.randn(2, 16, 16, generator=g, dtype=torch.complex128)
    lhs = (waves.probes(probe, idx).conj() * x).sum()
    rhs = (probe.conj() * waves.shift_back_sum(x, idx)).sum()
    assert torch.allclose(lhs, rhs, atol=1e-10)
    y0, y1, x0, x1 = waves.box(idx)
    c = waves.scan.corners[idx]
    assert (y0, x0) == tuple(c.min(0).values.tolist())
    assert (y1 - 16, x1 - 16) == tuple(c.max(0).values.tolist())


def test_cpu_window_loops_equal_the_index_gather_and_scatter():
    g = torch.Generator().manual_seed(1)
    obj = torch.randn(40, 50, generator=g, dtype=torch.complex128)
    corners = torch.tensor([[0, 0], [3, 7], [20, 30], [24, 34], [3, 8]])
    got = gather_windows(obj, corners, (16, 16))
    assert torch.equal(got, extract_patches(obj, corners, (16, 16)))
    patches = torch.randn(5, 16, 16, generator=g, dtype=torch.complex128)
    a, b = torch.zeros_like(obj), torch.zeros_like(obj)
    scatter_windows(a, patches, corners)
    scatter_add_patches(b, patches, corners)
    assert torch.allclose(a, b, atol=1e-14)  # overlapping windows sum


@pytest.mark.parametrize(("modes", "masked"), [(1, False), (2, True), (1, True)])
def test_fused_batched_delta_equals_detector_delta(modes, masked):
    """The fused (numba) detector step is ``detector_delta`` to float rounding."""
    pytest.importorskip("numba")
    from ptyframe.engines import minibatch_delta
    from ptyframe.physics.projection import detector_delta

    g = torch.Generator().manual_seed(3)
    wave = torch.randn(6, modes, 16, 16, dtype=torch.complex64, generator=g)
    wave[0, :, :2, :2] = 0  # Xi(0) = 1 pixels
    amps = torch.rand(6, 16, 16, generator=g)
    valid = (torch.rand(6, 16, 16, generator=g) > 0.2) if masked else None
    want, want_err = detector_delta(wave, amps, valid)
    got, err = minibatch_delta.batched_delta(wave.clone(), amps, valid)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(err, want_err, rtol=1e-5, atol=1e-4)
    assert float(want.abs().max()) > 0.5  # not a trivially zero step
