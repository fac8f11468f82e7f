"""The noise-aware certified denoiser ``cpl_auto``: estimate, frozen t, bound, state.

``D_t = (1 - t) cpl_sigma15 + t cpl_blind`` with ``t`` frozen at the first call from Donoho's
MAD noise level of the normalised object (``ptyframe/denoise/auto.py``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ptyframe.denoise.apply import ComplexDenoiser
from ptyframe.denoise.auto import AutoMixDenoiser, estimate_sigma, haar_diagonal, mix_weight
from ptyframe.denoise.check import applied_jacobian_norm
from ptyframe.denoise.plugin import CplAutoConfig, build_cpl_auto, stored_bound
from ptyframe.denoise.weights import load_denoiser
from ptyframe.engines.prior import DenoiseStep, DenoiseStepConfig
from ptyframe.errors import ConfigError
from ptyframe.registry import BuildContext

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:DeprecationWarning")


def _smooth(n: int = 128) -> np.ndarray:
    """A smooth image in [0.2, 0.8]: a ramp plus a long-wavelength sinusoid."""
    yy, xx = np.mgrid[0:n, 0:n] / n
    return 0.2 + 0.3 * xx + 0.15 * (1 + np.sin(2 * math.pi * (yy + 0.5 * xx)))


def _object(n: int, sigma: float, seed: int) -> torch.Tensor:
    """A weak-phase object with Gaussian noise of ``sigma`` on Re and Im, complex64."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n]
    phi = np.zeros((n, n))
    for _ in range(6):
        cy, cx, r = rng.uniform(0, n), rng.uniform(0, n), rng.uniform(3, 7)
        phi += 0.3 * ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
    noise = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    obj = np.exp(1j * phi) + sigma * noise
    return torch.tensor(obj, dtype=torch.complex64)


def _auto(**kw) -> AutoMixDenoiser:
    den = build_cpl_auto(CplAutoConfig(**kw), BuildContext(registry=None))  # type: ignore[arg-type]
    assert isinstance(den, AutoMixDenoiser)
    return den


# --------------------------------------------------------------------------- the estimate
@pytest.mark.parametrize("sigma", [0.01, 0.03, 0.1])
def test_mad_estimate_recovers_a_known_sigma_on_a_smooth_image(sigma: float) -> None:
    rng = np.random.default_rng(7)
    img = _smooth() + sigma * rng.standard_normal((128, 128))
    est = float(estimate_sigma(torch.tensor(img)[None])[0])
    assert est == pytest.approx(sigma, rel=0.2)


def test_noisier_input_gives_a_higher_level_and_the_smooth_image_alone_almost_none() -> None:
    rng = np.random.default_rng(3)
    base = _smooth()
    est = [
        float(estimate_sigma(torch.tensor(base + s * rng.standard_normal(base.shape))[None])[0])
        for s in (0.0, 0.02, 0.05)
    ]
    assert est[0] < 0.002  # the smooth image reaches the finest diagonal scale very little
    assert est[0] < est[1] < est[2]
    assert est[2] / est[1] == pytest.approx(2.5, rel=0.2)


def test_haar_diagonal_is_orthonormal_on_white_noise() -> None:
    x = torch.randn(1, 256, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float(haar_diagonal(x).std()) == pytest.approx(1.0, rel=0.02)


def test_mix_weight_is_a_clipped_ramp_or_a_step() -> None:
    s = torch.tensor([0.0, 0.01, 0.02, 0.03, 0.05])
    assert mix_weight(s, 0.01, 0.03).tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])
    assert mix_weight(s, 0.02, 0.02).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="sigma_high"):
        mix_weight(s, 0.03, 0.01)
    with pytest.raises(ConfigError, match="sigma_low"):
        CplAutoConfig(sigma_low=0.03, sigma_high=0.01)
    with pytest.raises(ConfigError, match="denoiser.t"):
        CplAutoConfig(t=1.5)


# --------------------------------------------------------------------------- frozen t
def test_t_is_set_at_the_first_call_from_the_level_and_then_frozen() -> None:
    noisy, clean = _object(48, 0.05, 0), _object(48, 0.0, 1)
    den = _auto(sigma_low=0.0, sigma_high=1.0)  # ramp: t = sigma_hat of the normalised object
    assert den.t is None
    den(noisy)
    t_first = den.t.clone()
    lo, scale, _ = den.frozen
    expected = float(estimate_sigma((torch.stack([noisy.real, noisy.imag]) - lo) / scale).min())
    assert float(t_first[0]) == pytest.approx(expected, rel=1e-5)
    assert 0.02 < float(t_first[0]) < 0.5
    for obj in (clean, noisy * 3, clean):
        den(obj)
        assert torch.equal(den.t, t_first)
    # the level of a clean object is lower: a fresh denoiser freezes a smaller t on it
    fresh = _auto(sigma_low=0.0, sigma_high=1.0)
    fresh(clean)
    assert float(fresh.t[0]) < 0.5 * float(t_first[0])
    assert den.scalars()["denoise_t"] == pytest.approx(float(t_first[0]))


def test_the_mix_is_the_two_nets_weighted_as_the_theorem_says() -> None:
    obj = _object(40, 0.03, 2)
    outs = {}
    for stem in ("cpl_sigma15", "cpl_blind"):
        single = ComplexDenoiser(load_denoiser(stem), normalisation="frozen")
        outs[stem] = single(obj)
    for t in (0.0, 0.3, 1.0):
        got = _auto(t=t)(obj)
        want = (1 - t) * outs["cpl_sigma15"] + t * outs["cpl_blind"]
        assert torch.allclose(got, want, atol=1e-5), t
    assert (outs["cpl_sigma15"] - outs["cpl_blind"]).abs().max() > 1e-2  # the nets differ


def test_frozen_mix_is_nonexpansive_measured_below_the_stored_bound() -> None:
    bound = max(stored_bound("cpl_sigma15"), stored_bound("cpl_blind"))
    assert bound <= 1.0
    obj = _object(40, 0.05, 4)
    den = _auto(t=0.4)
    den(obj)  # freezes the range and t
    jn = applied_jacobian_norm(den, obj, n_iter=30)
    assert 0.3 < jn <= bound + 1e-4
    assert torch.equal(den.t, torch.full((2,), 0.4))


# --------------------------------------------------------------------------- state
def test_t_round_trips_through_the_prior_state_dict() -> None:
    obj = _object(40, 0.05, 5)
    step = DenoiseStep(DenoiseStepConfig(rho=0.3), _auto(sigma_low=0.0, sigma_high=1.0))
    a = obj.clone()
    step.mix(a)
    saved = step.state_dict()
    assert {"frozen", "t", "sigma"} <= set(saved)
    # a new process: a fresh denoiser that would freeze another t on another object
    fresh = DenoiseStep(DenoiseStepConfig(rho=0.3), _auto(sigma_low=0.0, sigma_high=1.0))
    fresh.load_state_dict(saved)
    assert torch.equal(fresh.denoiser.t, step.denoiser.t)
    b, c = a.clone(), a.clone()
    step.mix(b)
    fresh.mix(c)
    assert torch.equal(b, c)
    other = DenoiseStep(DenoiseStepConfig(rho=0.3), _auto(sigma_low=0.0, sigma_high=1.0))
    d = a.clone()
    other.mix(d)  # freezes on the later object: not the same map
    assert not torch.equal(other.denoiser.t, step.denoiser.t)


def test_plugins_listing_shows_the_bound() -> None:
    import ptyframe

    comp = ptyframe.registry().get("denoiser", "cpl_auto")
    assert "<= max(1.0000, 1.0000) = 1.0000 certified" in comp.doc


# --------------------------------------------------------------------------- the dose
def _measurements(counts_per_pixel: float, n: int = 4, window: int = 8):
    """Fake measurements: ``n`` tiles of constant counts on a 2x2 raster, step 4 px."""
    from types import SimpleNamespace

    amps = torch.full((n, window, window), math.sqrt(counts_per_pixel), dtype=torch.float32)
    pos = np.array([[0, 0], [0, 4], [4, 0], [4, 4]], dtype=np.float64)[:n]
    geom = SimpleNamespace(positions_px=pos, window=(window, window), object_shape=(20, 20))
    from ptyframe.data.measurements import Measurements

    return Measurements(amps, None, np.arange(n), geom)  # type: ignore[arg-type]


def test_dose_is_total_counts_over_the_covered_object_pixels() -> None:
    from ptyframe.denoise.dose import covered_pixels, photons_per_object_pixel

    meas = _measurements(10.0)
    assert covered_pixels(meas.geometry.positions_px, (8, 8), (20, 20)) == 12 * 12
    assert photons_per_object_pixel(meas) == pytest.approx(4 * 64 * 10.0 / 144)

    class TwoRanks:  # another process holds as many counts: the sum doubles
        def allreduce_sum_(self, t: torch.Tensor) -> torch.Tensor:
            return t.mul_(2)

    assert photons_per_object_pixel(meas, TwoRanks()) == pytest.approx(2 * 4 * 64 * 10.0 / 144)


def test_dose_weight_is_one_at_low_dose_zero_at_high_dose_and_log_linear_between() -> None:
    from ptyframe.denoise.auto import dose_weight

    assert dose_weight(10.0, 100.0, 1000.0) == 1.0
    assert dose_weight(math.sqrt(1e5), 100.0, 1000.0) == pytest.approx(0.5)
    assert dose_weight(5000.0, 100.0, 1000.0) == 0.0
    assert [dose_weight(d, 700.0, 700.0) for d in (130.0, 699.0, 700.0, 1.3e4)] == [1, 1, 0, 0]
    with pytest.raises(ConfigError, match="dose_low"):
        dose_weight(1.0, 10.0, 5.0)
    with pytest.raises(ConfigError, match="dose_low"):
        CplAutoConfig(dose_low=10.0, dose_high=5.0)


def test_the_observed_dose_sets_t_and_a_higher_dose_gives_the_single_sigma_net() -> None:
    obj = _object(40, 0.03, 6)
    ts = []
    for counts in (1.0, 1000.0):
        step = DenoiseStep(DenoiseStepConfig(rho=0.3), _auto(dose_low=10.0, dose_high=100.0))
        step.observe(_measurements(counts))  # doses 1.8 and 1778 photons per object pixel
        step.mix(obj.clone())
        ts.append(step.scalars()["denoise_t"])
        assert step.state_dict()["dose"] == pytest.approx(4 * 64 * counts / 144)
    assert ts == [1.0, 0.0]


def test_a_resumed_pine_run_keeps_the_frozen_t_and_equals_the_straight_run() -> None:
    """Stop after 2 epochs, resume in a fresh engine from the state dict: same t, same object.

    ``t`` comes from the MAD level here (the dose is switched off, so ``0 < t < 1``); the
    resumed object would give another level: ``t`` must come from the saved state.
    """
    from types import SimpleNamespace

    import ptyframe
    from ptyframe import compose
    from ptyframe.data.measurements import Measurements
    from ptyframe.engines.pine import PineConfig
    from ptyframe.initial import InitConfig, initial_state

    from synth import make_dataset

    ds = make_dataset(m=16, n=4, step=4.0, jitter=0.7, photons=1e4)
    meas = Measurements.from_dataset(ds)
    registry = ptyframe.registry()
    ctx = BuildContext(registry)
    run = SimpleNamespace(engine=PineConfig(epochs=4, alpha=0.3, beta=0.2, rho=0.3))
    run.denoiser = CplAutoConfig(dose_low=0.0, dose_high=0.0, sigma_low=0.0, sigma_high=1.0)

    def engine(state):
        eng = compose.build_engine(run, registry, ctx)
        eng.prepare(meas, state, seed=1)
        return eng

    straight = initial_state(InitConfig(), ds, meas)
    eng = engine(straight)
    for epoch in range(4):
        eng.step(epoch)
    t_straight = eng.prior.denoiser.t
    first = initial_state(InitConfig(), ds, meas)
    eng = engine(first)
    for epoch in range(2):
        eng.step(epoch)
    saved, resumed = eng.state_dict(), first.clone()
    assert {"frozen", "t", "dose"} <= set(saved["prior"])
    eng = engine(resumed)
    eng.load_state_dict(saved)
    for epoch in range(2, 4):
        eng.step(epoch)
    assert torch.equal(eng.prior.denoiser.t, t_straight) and 0 < float(t_straight[0]) < 1
    assert torch.equal(resumed.object, straight.object)
