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
    # no vacuum: outside the lit region both deviations are 0 (window 0), nothing substituted
    assert np.all(pair.window[~lit] == 0.0)
    assert np.all(pair.estimate[~lit] == 0.0) and np.all(pair.truth[~lit] == 0.0)
    w = pair.window
    np.testing.assert_allclose(pair.truth, w * (truth - np.sum(w * truth) / np.sum(w)))
    # away from the lit edge the aligned estimate matches the truth up to the noise
    inner = ndimage.binary_erosion(lit, iterations=4)
    err = np.abs(pair.aligned - truth)[inner]
    assert np.sqrt(np.mean(err**2)) < 0.02


def test_prepare_pair_without_illumination_uses_every_pixel() -> None:
    truth = _weak_phase_object(96, seed=12, kind="smooth")
    est = np.exp(-0.5j) * shift_image(truth, (-2.4, 0.8))
    pair = prepare_pair(est, truth, None)
    assert pair.mask.all()
    assert abs(pair.shift_yx[0] + 2.4) < 0.05 and abs(pair.shift_yx[1] - 0.8) < 0.05
    assert abs(pair.gamma - np.exp(0.5j)) < 1e-3
    assert nrmse(pair.aligned, truth) < 1e-3


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
        "frc_quarter_nyquist",
        "frc_half_nyquist",
        "frc_3q_nyquist",
        "resolution_half_bit_m",
        "resolution_one_seventh_m",
        "nrmse",
        "ssim_amplitude",
        "ssim_phase",
    }
    assert good["frc_half_nyquist"] > 0.995 and good["frc_3q_nyquist"] > 0.99
    # pixel-limited: a smooth object has no power left near Nyquist, where the rounding of
    # the sub-pixel shift decides; the crossing, if any, lies above 0.9 Nyquist
    res_good = good["resolution_half_bit_m"]
    assert math.isnan(res_good) or res_good < 2.0 * pix / 0.9
    assert good["nrmse"] < 0.01  # relative to the truth's deviation, not to |truth| ~ 1
    assert good["ssim_phase"] > 0.99 and good["ssim_amplitude"] > 0.99
    assert bad["frc_3q_nyquist"] < 0.2 and bad["frc_half_nyquist"] < 0.3
    assert 2 * pix < bad["resolution_half_bit_m"] < 20 * pix
    assert bad["resolution_one_seventh_m"] < bad["resolution_half_bit_m"]
    # white noise sigma 0.1 under the window: N = 0.01 sum W^2 against S = ||D[truth]||^2;
    # with the optimal scale NRMSE = sqrt(N / (S + N))
    pair0 = metrics["nrmse"].prepare(clean, truth, illum)
    sig = float(np.sum(np.abs(pair0.truth) ** 2))
    noi = 0.01 * float(np.sum(pair0.window**2))
    assert bad["nrmse"] == pytest.approx(math.sqrt(noi / (sig + noi)), abs=0.03)
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


# ----------------------------------------------------------------------------- floor tests
# The FRC against the truth must score an estimate without information as ~0 in every
# reported band, on every geometry the experiments use (conf/experiment: lowdose/highdose
# share one geometry, overlap_* have their own rasters) and on a 512^2 particle film. Before
# the windowed-deviation comparison, a constant scored 0.47 at 1/2 Nyquist on lowdose.
BANDS = (0.25, 0.5, 0.75)
#: conf/experiment/*.yaml scan rasters (n_y = n_x, overlap); the rest as in lowdose.yaml.
EXPERIMENT_RASTERS = {
    "lowdose": (10, 0.7),  # also highdose and the pine_/epie_/rpie_ variants
    "overlap_375": (5, 0.375),
    "overlap_500": (6, 0.5),
    "overlap_625": (8, 0.625),
    "overlap_750": (12, 0.75),
}
_FLOOR_CASES: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _experiment_truth(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (truth object, illumination) of a conf/experiment geometry (noise-free)."""
    from ptyframe.simulation.simulate import simulate_dataset

    n, overlap = EXPERIMENT_RASTERS[name]
    scan = {"name": "raster", "n_y": n, "n_x": n, "overlap": overlap, "jitter_px": 1.0}
    data = simulate_dataset(
        "particles", "focused", scan, window_px=64, pixel_size_m=20e-9, i0_origin=1e2,
        noise="none", seed=0,
    )  # fmt: skip
    return data.truth.object[0].astype(np.complex128), data.truth.illumination.astype(float)


def _film_512_truth() -> tuple[np.ndarray, np.ndarray]:
    """Return a 512^2 particle film (radii 2-14 px, <= 1 rad) and the illumination of a
    25 x 25 raster of a defocused 128 px focused probe, step 16 px, +-2 px jitter (rounded)."""
    from ptyframe.metrics.illumination import illumination_map
    from ptyframe.simulation.phantoms import ParticlesConfig, ParticlesPhantom
    from ptyframe.simulation.probes import FocusedProbe, FocusedProbeConfig

    rng = np.random.default_rng(512)
    cfg = ParticlesConfig(radius_min_px=2.0, radius_max_px=14.0, max_phase_rad=1.0)
    obj = ParticlesPhantom(cfg).generate((512, 512), rng)
    probe = FocusedProbe(FocusedProbeConfig()).generate(128, 20e-9, 1.5498e-10)
    grid = np.arange(25) * 16.0
    pos = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    pos = np.clip(np.round(pos + rng.uniform(-2, 2, pos.shape)) + 2, 0, 512 - 128)
    return obj, illumination_map(probe[None], pos, (512, 512))


def _floor_case(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name not in _FLOOR_CASES:
        make = _film_512_truth if name == "film_512" else lambda: _experiment_truth(name)
        _FLOOR_CASES[name] = make()
    return _FLOOR_CASES[name]


def _lowpass(x: np.ndarray, cutoff_cyc_px: float) -> np.ndarray:
    ky, kx = np.fft.fftfreq(x.shape[0])[:, None], np.fft.fftfreq(x.shape[1])[None, :]
    return np.fft.ifft2(np.fft.fft2(x) * (np.hypot(ky, kx) <= cutoff_cyc_px))


def _bands(estimate: np.ndarray, truth: np.ndarray, illum: np.ndarray) -> np.ndarray:
    from ptyframe.metrics.frc import frc_against_truth

    res, _ = frc_against_truth(estimate, truth, illum, 20e-9)
    return np.array([res.band(f) for f in BANDS])


FLOOR_NAMES = [*EXPERIMENT_RASTERS, "film_512"]


@pytest.mark.parametrize("name", FLOOR_NAMES)
def test_frc_floor_constant_lowpass_random_phase_and_truth(name: str) -> None:
    truth, illum = _floor_case(name)
    rng = np.random.default_rng(21)
    constant = _bands(np.full(truth.shape, 0.9 * np.exp(0.3j)), truth, illum)
    np.testing.assert_array_equal(constant, 0.0)  # exactly 0, not NaN
    # truth low-passed at 1/4 Nyquist (0.125 cycle/pixel): nothing in the 1/2 and 3/4 bands
    low = _bands(_lowpass(truth, 0.125), truth, illum)
    assert np.all(np.abs(low[1:]) < 0.05), low
    # random phase: unrelated to the truth. One band of a ~110 px lit region scatters by
    # ~0.022 (1/4 band) and ~0.016 (1/2, 3/4), measured over 20 seeds: 0.05 is ~3 sigma above
    # 1/4 Nyquist; the 1/4 band gets 0.08 (3.5 sigma) on the small geometries.
    noise = _bands(np.exp(1j * rng.uniform(-np.pi, np.pi, truth.shape)), truth, illum)
    assert np.all(np.abs(noise[1:]) < 0.05), noise
    assert abs(noise[0]) < (0.05 if name == "film_512" else 0.08), noise
    assert np.all(_bands(truth, truth, illum) > 0.99)


def _coloured_noise(
    truth: np.ndarray, window: np.ndarray, snr: float, rng: np.random.Generator
) -> np.ndarray:
    """Return complex noise whose ring power is the windowed truth deviation's over ``snr``."""
    from ptyframe.metrics.align import windowed_deviation

    spec = np.abs(np.fft.fft2(windowed_deviation(truth, window))) ** 2
    ky, kx = np.fft.fftfreq(truth.shape[0])[:, None], np.fft.fftfreq(truth.shape[1])[None, :]
    ring = np.floor(np.hypot(ky, kx) * min(truth.shape) + 0.5).astype(int)
    ring_power = np.bincount(ring.ravel(), spec.ravel()) / np.bincount(ring.ravel())
    amp = np.sqrt(ring_power[ring] / snr / float(np.mean(window**2)))
    white = _cnoise(rng, truth.shape, 1.0)
    return np.fft.ifft2(np.fft.fft2(white) * amp) / math.sqrt(truth.size)


@pytest.mark.parametrize("name", ["lowdose", "overlap_375", "film_512"])
@pytest.mark.parametrize("snr", [1.0, 3.0])
def test_frc_of_noisy_copies_follows_the_snr_formula(name: str, snr: float) -> None:
    """Noise of known SNR per ring: two copies give SNR/(1+SNR), one vs truth its sqrt."""
    from ptyframe.metrics.align import prepare_pair

    truth, illum = _floor_case(name)
    window = prepare_pair(truth, truth, illum).window
    rng = np.random.default_rng(22)
    a = truth + _coloured_noise(truth, window, snr, rng)
    b = truth + _coloured_noise(truth, window, snr, rng)
    expected = snr / (1.0 + snr)
    np.testing.assert_allclose(_bands(a, b, illum), expected, atol=0.05)
    np.testing.assert_allclose(_bands(a, truth, illum), math.sqrt(expected), atol=0.05)


@pytest.mark.parametrize("name", ["lowdose", "overlap_750", "film_512"])
def test_frc_removes_a_subpixel_misregistration(name: str) -> None:
    from ptyframe.metrics.frc import frc_against_truth

    truth, illum = _floor_case(name)
    moved = 0.7 * np.exp(-1.1j) * shift_image(truth, (2.3, -1.7))  # wraps outside the lit area
    res, pair = frc_against_truth(moved, truth, illum, 20e-9)
    assert abs(pair.shift_yx[0] - 2.3) < 0.05 and abs(pair.shift_yx[1] + 1.7) < 0.05
    assert all(res.band(f) > 0.99 for f in BANDS)


@pytest.mark.parametrize("name", ["lowdose", "overlap_375", "film_512"])
def test_nrmse_and_ssim_floors(name: str) -> None:
    """NRMSE of the windowed deviations: 0 for the truth, 1 for a constant, ~1 for noise;
    SSIM of the windowed amplitude/phase deviations: 1 for the truth, ~0 without information."""
    reg = _registry()
    metrics = [reg.build("metric", n) for n in ("nrmse", "ssim")]
    truth, illum = _floor_case(name)
    rng = np.random.default_rng(23)

    def score(est: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in metrics:
            out.update(m(est, truth, illum, 20e-9))
        return out

    perfect = score(0.5 * np.exp(2.0j) * truth)
    assert perfect["nrmse"] < 1e-6
    assert perfect["ssim_amplitude"] > 0.999 and perfect["ssim_phase"] > 0.999
    const = score(np.full(truth.shape, 1.0 + 0j))
    assert const["nrmse"] == 1.0
    assert abs(const["ssim_amplitude"]) < 0.05 and abs(const["ssim_phase"]) < 0.05
    rand = score(np.exp(1j * rng.uniform(-np.pi, np.pi, truth.shape)))
    assert 0.95 < rand["nrmse"] <= 1.0
    assert abs(rand["ssim_amplitude"]) < 0.05 and abs(rand["ssim_phase"]) < 0.05
