"""Tests for ptyframe.metrics: alignment, FRC, NRMSE, SSIM and the metric components."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from ptyframe.errors import ConfigError, DataValidationError
from ptyframe.metrics import plugin as metrics_plugin
from ptyframe.metrics.align import (
    correct_scale_phase,
    prepare_pair,
    register_subpixel,
    shift_image,
)
from ptyframe.metrics.frc import ONE_SEVENTH, FrcResult, frc, half_bit_threshold
from ptyframe.metrics.image import nrmse, ssim
from ptyframe.registry import Registry


def _cnoise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Complex white Gaussian noise with E|n|^2 = sigma^2."""
    return sigma / math.sqrt(2.0) * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))


def _weak_phase_object(n: int, seed: int, kind: str = "particles") -> np.ndarray:
    """A weak-phase object near 1+0j: phase in [-0.3, 0.1] rad, amplitude 0.95..1."""
    rng = np.random.default_rng(seed)
    if kind == "particles":
        yy, xx = np.mgrid[:n, :n]
        phi = np.zeros((n, n))
        for _ in range(n * n // 400):
            cy, cx, r = rng.uniform(0, n), rng.uniform(0, n), rng.uniform(2, 7)
            phi += ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
    else:
        phi = ndimage.gaussian_filter(rng.standard_normal((n, n)), 3.0)
    phi = (phi - phi.min()) / (phi.max() - phi.min())
    return (1.0 - 0.05 * phi) * np.exp(1j * (0.1 - 0.4 * phi))


# ----------------------------------------------------------------------------- alignment
def test_shift_image_integer_shift_is_roll() -> None:
    x = np.random.default_rng(1).standard_normal((32, 40)) + 0j
    out = shift_image(x, (2, -3))
    np.testing.assert_allclose(out, np.roll(x, (2, -3), axis=(0, 1)), atol=1e-12)
    real = shift_image(x.real, (1, 1))
    assert real.dtype == np.float64


@pytest.mark.parametrize("kind", ["particles", "smooth"])
def test_register_subpixel_recovers_fourier_shift_on_weak_phase_object(kind: str) -> None:
    obj = _weak_phase_object(128, seed=2, kind=kind)
    moving = shift_image(obj, (3.3, -1.7))
    sy, sx = register_subpixel(obj, moving, upsample=20)
    assert abs(sy - 3.3) < 0.05 and abs(sx + 1.7) < 0.05
    # the opposite direction gives the opposite shift
    sy2, sx2 = register_subpixel(moving, obj, upsample=20)
    assert abs(sy2 + 3.3) < 0.05 and abs(sx2 - 1.7) < 0.05


def test_correct_scale_phase_recovers_complex_scalar() -> None:
    truth = _weak_phase_object(64, seed=3)
    c = 0.8 * np.exp(1j * 0.7)
    est = truth / c
    corrected, gamma = correct_scale_phase(est, truth)
    assert abs(gamma - c) < 1e-12
    np.testing.assert_allclose(corrected, truth, atol=1e-12)
    mask = np.zeros(truth.shape, bool)
    mask[10:30, 5:50] = True
    est2 = np.where(mask, est, 7.0)  # garbage outside the mask does not matter
    _, gamma2 = correct_scale_phase(est2, truth, mask)
    assert abs(gamma2 - c) < 1e-12


def _lit_case(
    noise: float,
    seed: int = 4,
    kind: str = "particles",
    garbage: bool = True,
    shift: tuple[float, float] = (3.3, -1.7),
    beam_px: float = 22.0,
):
    """Truth, an estimate that is truly translated (not circularly) and scaled, illumination.

    With ``garbage`` the estimate is vacuum plus strong noise outside the lit region, as an
    unconstrained reconstruction might be; the lit part carries the scale 0.8 exp(0.7i).
    """
    n = 128
    big = _weak_phase_object(n + 32, seed=seed, kind=kind)
    truth = big[:n, :n]
    rng = np.random.default_rng(seed + 100)
    moved = shift_image(big, shift)[:n, :n]
    est = 0.8 * np.exp(0.7j) * moved + _cnoise(rng, (n, n), noise)
    yy, xx = np.mgrid[:n, :n]
    illum = 1e6 * np.exp(-((yy - 64.0) ** 2 + (xx - 60.0) ** 2) / (2 * beam_px**2))
    lit = illum >= 0.01 * illum.max()
    if garbage:
        est = np.where(lit, est, 1.0 + 0.3 * rng.standard_normal((n, n)))
    return truth, est, illum, lit


@pytest.mark.parametrize("kind", ["particles", "smooth"])
def test_prepare_pair_aligns_scales_and_masks(kind: str) -> None:
    truth, est, illum, lit = _lit_case(noise=0.01, kind=kind)
    pair = prepare_pair(est, truth, illum, threshold=0.01, upsample=20)
    assert abs(pair.shift_yx[0] - 3.3) < 0.05 and abs(pair.shift_yx[1] + 1.7) < 0.05
    c = 0.8 * np.exp(0.7j)
    assert abs(pair.gamma * c - 1.0) < 0.01
    np.testing.assert_array_equal(pair.mask, lit)
    assert np.all(pair.estimate[~lit] == 1.0 + 0j) and np.all(pair.truth[~lit] == 1.0 + 0j)
    np.testing.assert_array_equal(pair.truth[lit], truth[lit])
    # away from the lit edge the aligned estimate matches the truth up to the noise
    inner = ndimage.binary_erosion(lit, iterations=4)
    err = np.abs(pair.estimate - pair.truth)[inner]
    assert np.sqrt(np.mean(err**2)) < 0.02


def test_prepare_pair_without_illumination_uses_every_pixel() -> None:
    truth = _weak_phase_object(96, seed=12, kind="smooth")
    est = np.exp(-0.5j) * shift_image(truth, (-2.4, 0.8))
    pair = prepare_pair(est, truth, None)
    assert pair.mask.all()
    assert abs(pair.shift_yx[0] + 2.4) < 0.05 and abs(pair.shift_yx[1] - 0.8) < 0.05
    assert abs(pair.gamma - np.exp(0.5j)) < 1e-3
    assert nrmse(pair.estimate, pair.truth) < 1e-3


def test_prepare_pair_rejects_mismatched_shapes() -> None:
    with pytest.raises(DataValidationError, match="shape"):
        prepare_pair(np.ones((8, 8)), np.ones((8, 9)))
    with pytest.raises(DataValidationError, match="illumination"):
        prepare_pair(np.ones((8, 8)), np.ones((8, 8)), np.ones((4, 4)))


# ----------------------------------------------------------------------------- FRC
def test_frc_of_image_with_itself_is_one() -> None:
    rng = np.random.default_rng(5)
    a = _cnoise(rng, (64, 64), 1.0)
    res = frc(a, a, pixel_size_m=1e-8)
    np.testing.assert_allclose(res.frc, 1.0, atol=1e-12)
    assert res.freq_per_m[-1] == pytest.approx(0.5 / 1e-8)
    assert len(res.frc) == 33 and res.n_pixels[0] == 1
    rect = _cnoise(rng, (48, 80), 1.0)
    res_r = frc(rect, 3.0 * rect)
    assert len(res_r.frc) == 25
    np.testing.assert_allclose(res_r.frc, 1.0, atol=1e-12)
    assert res_r.resolution_m("half_bit") is None


def test_frc_of_independent_noise_is_near_zero() -> None:
    rng = np.random.default_rng(6)
    res = frc(_cnoise(rng, (256, 256), 1.0), _cnoise(rng, (256, 256), 1.0))
    mid = slice(20, 110)
    assert abs(np.mean(res.frc[mid])) < 0.1
    # each ring fluctuates like 1/sqrt(2 n); 5 sigma bound
    assert np.all(np.abs(res.frc[mid]) < 5.0 / np.sqrt(2.0 * res.n_pixels[mid]))


@pytest.mark.parametrize("snr", [1.0, 3.0])
def test_frc_signal_plus_noise_matches_snr_formula(snr: float) -> None:
    """Equal-band white signal and noise: FRC = SNR / (1 + SNR) for two noisy copies."""
    rng = np.random.default_rng(7)
    shape = (256, 256)
    s = _cnoise(rng, shape, math.sqrt(snr))
    n1, n2 = _cnoise(rng, shape, 1.0), _cnoise(rng, shape, 1.0)
    mid = slice(20, 120)
    two_copies = frc(s + n1, s + n2).frc[mid]
    assert np.mean(two_copies) == pytest.approx(snr / (1.0 + snr), abs=0.02)
    assert np.all(np.abs(two_copies - snr / (1.0 + snr)) < 0.15)
    against_truth = frc(s, s + n1).frc[mid]
    assert np.mean(against_truth) == pytest.approx(math.sqrt(snr / (1.0 + snr)), abs=0.02)


def test_half_bit_threshold_hand_values() -> None:
    # van Heel & Schatz (2005): T = (0.2071 + 1.9102/sqrt n) / (1.2071 + 0.9102/sqrt n)
    np.testing.assert_allclose(
        half_bit_threshold(np.array([1, 100, 10000])), [1.0, 0.30669, 0.18599], atol=2e-4
    )
    # in a 64 x 64 image ring 1 holds the 8 neighbours of the origin (|k| = 1, sqrt 2 < 1.5)
    res = frc(np.ones((64, 64)), np.ones((64, 64)))
    assert res.n_pixels[1] == 8
    assert res.half_bit[1] == pytest.approx(0.88245 / 1.52890, abs=2e-4)  # = 0.5772
    assert np.all(res.one_seventh == ONE_SEVENTH)


def test_frc_at_interpolates_linearly() -> None:
    freq = np.array([0.0, 0.25, 0.5]) / 2e-9  # pixel 2 nm -> Nyquist 2.5e8 per m
    res = FrcResult(
        freq,
        np.array([1.0, 0.6, 0.1]),
        np.array([1, 8, 16]),
        half_bit_threshold(np.array([1, 8, 16])),
        np.full(3, ONE_SEVENTH),
        2e-9,
    )
    assert res.at(0.5) == pytest.approx(0.6)
    assert res.at(0.75) == pytest.approx(0.35)
    # 1/7 crossing between rings 1 and 2: 0.6 - 0.5 t = 1/7 -> t = (0.6 - 1/7) / 0.5
    t = (0.6 - ONE_SEVENTH) / 0.5
    assert res.crossing_per_m("1/7") == pytest.approx(freq[1] + t * (freq[2] - freq[1]))
    with pytest.raises(ValueError):
        res.resolution_m("fsc")


def test_frc_resolution_crossing_on_falling_curve() -> None:
    """Signal power falling as a Gaussian over white noise: FRC = SNR(f) / (1 + SNR(f))."""
    rng = np.random.default_rng(8)
    n, f0, snr0 = 256, 0.15, 10.0
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.fftfreq(n)[None, :]
    snr_k = snr0 * np.exp(-(ky**2 + kx**2) / f0**2)
    spec = np.sqrt(snr_k) * np.exp(2j * np.pi * rng.random((n, n)))
    s = np.fft.ifft2(spec) * n  # unit noise power per frequency for the noise below
    a = s + _cnoise(rng, (n, n), 1.0)
    b = s + _cnoise(rng, (n, n), 1.0)
    pix = 1e-8
    res = frc(a, b, pixel_size_m=pix)
    # 1/7 crossing: SNR = 1/6 -> f = f0 sqrt(ln(6 snr0))
    f_seventh = f0 * math.sqrt(math.log(6.0 * snr0))
    assert res.resolution_m("1/7") == pytest.approx(pix / f_seventh, rel=0.03)
    # half-bit crossing: the same crossing rule on the expected curve with the same rings
    f_ring = res.freq_per_m * pix
    expected = snr0 * np.exp(-(f_ring**2) / f0**2)
    ideal = FrcResult(
        res.freq_per_m, expected / (1 + expected), res.n_pixels, res.half_bit, res.one_seventh, pix
    )
    assert res.resolution_m("half_bit") == pytest.approx(ideal.resolution_m("half_bit"), rel=0.03)
    assert res.resolution_m("half_bit") > res.resolution_m("1/7")
    assert res.at(0.5) == pytest.approx(float(ideal.at(0.5)), abs=0.05)


# ----------------------------------------------------------------------------- image metrics
def test_nrmse_ignores_complex_scale_and_grows_with_noise() -> None:
    truth = _weak_phase_object(64, seed=9)
    assert nrmse(0.3 * np.exp(-2.1j) * truth, truth) < 1e-12
    rng = np.random.default_rng(10)
    noise = _cnoise(rng, truth.shape, 1.0)
    values = [nrmse(truth + sig * noise, truth) for sig in (0.01, 0.03, 0.1)]
    assert values[0] < values[1] < values[2]
    expected = 0.03 * np.linalg.norm(noise) / np.linalg.norm(truth)
    assert values[1] == pytest.approx(expected, rel=0.05)
    mask = np.zeros(truth.shape, bool)
    mask[:32] = True
    est = truth.copy()
    est[~mask] = 0.0
    assert nrmse(est, truth, mask) < 1e-12 and nrmse(est, truth) > 0.5


def test_ssim_identity_noise_and_constant_images() -> None:
    rng = np.random.default_rng(11)
    a = ndimage.gaussian_filter(rng.random((64, 64)), 2.0)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    noisy = [ssim(a + sig * rng.standard_normal(a.shape), a) for sig in (0.005, 0.02, 0.08)]
    assert 1.0 > noisy[0] > noisy[1] > noisy[2]
    # constant images: SSIM = (2 c1 c2 + C1) / (c1^2 + c2^2 + C1), C1 = (0.01 L)^2
    c1, c2, rng_l = 0.5, 0.4, 1.0
    cc = (0.01 * rng_l) ** 2
    got = ssim(np.full((32, 32), c1), np.full((32, 32), c2), data_range=rng_l)
    assert got == pytest.approx((2 * c1 * c2 + cc) / (c1**2 + c2**2 + cc), rel=1e-9)
    with pytest.raises(DataValidationError):
        ssim(a + 0j, a)


# ----------------------------------------------------------------------------- components
def _registry() -> Registry:
    reg = Registry()
    metrics_plugin.ptyframe_register(reg.scoped("ptyframe.metrics"))
    return reg


def test_metric_components_agree_on_a_prepared_pair() -> None:
    reg = _registry()
    assert reg.names("metric") == ["frc", "nrmse", "ssim"]
    metrics = {name: reg.build("metric", name) for name in ("frc", "nrmse", "ssim")}
    # a smooth (band-limited) object, a small shift, a lit disk clear of the array border:
    # then the only differences left after prepare_pair are the added noise
    case = {"kind": "smooth", "shift": (0.6, -0.4), "beam_px": 15.0}
    truth, clean, illum, _ = _lit_case(noise=0.0, **case)
    _, noisy, _, _ = _lit_case(noise=0.1, **case)
    pix = 1e-8
    good: dict[str, float] = {}
    bad: dict[str, float] = {}
    for m in metrics.values():
        good.update(m(clean, truth, illum, pix))
        bad.update(m(noisy, truth, illum, pix))
    assert set(good) == {
        "frc_half_nyquist",
        "frc_3q_nyquist",
        "resolution_half_bit_m",
        "resolution_one_seventh_m",
        "nrmse",
        "ssim_amplitude",
        "ssim_phase",
    }
    assert good["frc_half_nyquist"] > 0.995 and good["frc_3q_nyquist"] > 0.99
    assert math.isnan(good["resolution_half_bit_m"])  # never crosses: pixel-limited
    assert good["nrmse"] < 0.003
    assert good["ssim_phase"] > 0.99 and good["ssim_amplitude"] > 0.99
    assert bad["frc_3q_nyquist"] < 0.2 and bad["frc_half_nyquist"] < 0.3
    assert 2 * pix < bad["resolution_half_bit_m"] < 20 * pix
    assert bad["resolution_one_seventh_m"] < bad["resolution_half_bit_m"]
    # noise sigma 0.1 on |truth| ~ 1: NRMSE ~ 0.1 (the scale fit removes a little of it)
    assert 0.08 < bad["nrmse"] < 0.15
    assert bad["ssim_phase"] < 0.5 and bad["ssim_amplitude"] < 0.5
    # the same numbers from one shared prepare_pair
    frc_metric = metrics["frc"]
    pair = frc_metric.prepare(noisy, truth, illum)
    assert frc_metric(noisy, truth, illum, pix, prepared=pair) == pytest.approx(
        {k: bad[k] for k in frc_metric.keys}, nan_ok=True
    )


def test_metric_configs_validate() -> None:
    reg = _registry()
    with pytest.raises(ConfigError, match="illumination_threshold"):
        reg.build("metric", {"name": "frc", "illumination_threshold": 1.5})
    with pytest.raises(ConfigError, match="upsample"):
        reg.build("metric", {"name": "ssim", "upsample": 0})
    with pytest.raises(ConfigError, match="no field"):
        reg.build("metric", {"name": "nrmse", "upsampel": 10})


def test_illumination_map_sums_every_tile_and_clips_at_the_edge():
    from ptyframe.metrics.illumination import illumination_map

    rng = np.random.default_rng(3)
    probe = rng.standard_normal((2, 4, 5)) + 1j * rng.standard_normal((2, 4, 5))
    power = float(np.sum(np.abs(probe) ** 2))
    inside = np.array([[0.0, 0.0], [3.7, 2.2], [6.0, 5.0]])
    out = illumination_map(probe, inside, (10, 10))
    assert np.isclose(out.sum(), 3 * power)  # Parseval-like: every tile's power lands once
    assert np.isclose(out[4, 3], np.sum(np.abs(probe[:, 1, 1]) ** 2))  # floored corner (3, 2)
    edge = illumination_map(probe, np.array([[8.0, 8.0]]), (10, 10))
    assert np.isclose(edge.sum(), np.sum(np.abs(probe[:, :2, :2]) ** 2))
