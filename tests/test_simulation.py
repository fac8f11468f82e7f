"""Tests of ptyframe.simulation: phantoms, probes, scans, dose, noise, files."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from ptyframe.errors import ConfigError
from ptyframe.registry import Registry
from ptyframe.simulation import plugin
from ptyframe.simulation.phantoms import (
    NaturalConfig,
    ParticlesConfig,
    ParticlesPhantom,
    SiemensStarConfig,
    SiemensStarPhantom,
    power_law_field,
)
from ptyframe.simulation.probes import (
    DiskProbe,
    DiskProbeConfig,
    FocusedProbe,
    FocusedProbeConfig,
    GaussianProbe,
    GaussianProbeConfig,
    incoherent_modes,
    probe_diameter_px,
)
from ptyframe.simulation.scans import FermatScanConfig, RasterScanConfig, nearest_neighbour_px
from ptyframe.simulation.simulate import SimulationConfig, Simulator, simulate_dataset

DX = 20e-9
LAM = 1.239841984e-6 / 8000.0
PURE_PHASE = {"name": "particles", "beta_over_delta": 0.0}


@pytest.fixture(scope="module")
def reg() -> Registry:
    r = Registry()
    plugin.ptyframe_register(r)
    return r


def small(reg: Registry, **kw):
    """Simulate a small 32 px, 4x4 case (overrides in kw)."""
    args = dict(window_px=32, scan={"n_y": 4, "n_x": 4}, registry=reg)
    args.update(kw)
    return simulate_dataset(**args)


class FixedScan:
    """A duck-typed scan returning fixed positions."""

    def __init__(self, positions: np.ndarray) -> None:
        self.positions = positions

    def generate(self, probe_diameter_px: float, rng: np.random.Generator) -> np.ndarray:
        return self.positions


# ---------------------------------------------------------------- registry and configs
def test_components_registered_and_hydra_compatible(reg: Registry) -> None:
    from omegaconf import OmegaConf

    assert reg.names("phantom") == ["natural", "particles", "siemens_star"]
    assert reg.names("probe") == ["disk", "focused", "gaussian", "kb", "zone_plate"]
    assert reg.names("scan") == ["fermat", "raster"]
    assert reg.names("simulation") == ["conebeam", "multislice", "ptycho2d"]
    assert reg.names("dataset") == ["simulated"]  # data=simulated lives with the simulation
    for comp in reg:
        OmegaConf.structured(comp.config_cls)  # Hydra-compatible field types
        if comp.kind == "dataset":
            ds = reg.build(comp.kind, comp.name)
            assert ds.truth is not None and ds.n_tiles > 0
            continue
        assert hasattr(
            reg.build(comp.kind, comp.name), "generate" if comp.kind != "simulation" else "run"
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda: SimulationConfig(photons_per_pattern=1e6, i0_origin=1e8),
        lambda: SimulationConfig(photons_per_pattern=None, i0_origin=None),
        lambda: SimulationConfig(photons_per_pattern=-1.0),
        lambda: SimulationConfig(window_px=-8),
        lambda: SimulationConfig(pixel_size_m=-1e-9),
        lambda: SimulationConfig(noise="gauss"),
        lambda: SimulationConfig(probe_modes=0),
        lambda: RasterScanConfig(overlap=1.0),
        lambda: RasterScanConfig(overlap=-0.1),
        lambda: FermatScanConfig(overlap=1.5),
        lambda: RasterScanConfig(n_y=0),
        lambda: RasterScanConfig(jitter_px=-1.0),
        lambda: ParticlesConfig(radius_min_px=-2.0),
        lambda: ParticlesConfig(radius_min_px=5.0, radius_max_px=3.0),
        lambda: DiskProbeConfig(diameter_px=-4.0),
        lambda: GaussianProbeConfig(fwhm_px=0.0),
        lambda: SiemensStarConfig(amplitude=0.0),
        lambda: NaturalConfig(amplitude_min=0.9, amplitude_max=0.5),
    ],
)
def test_bad_configs_raise(make) -> None:
    with pytest.raises(ConfigError):
        make()


def test_overlong_defocus_is_an_error() -> None:
    with pytest.raises(ConfigError, match="defocus"):
        FocusedProbe(FocusedProbeConfig(defocus_m=1.0)).generate(64, DX, LAM)


# ---------------------------------------------------------------- probes
@pytest.mark.parametrize("m", [32, 64, 128])
def test_focused_probe_fills_window_and_decays(m: int) -> None:
    p = FocusedProbe(FocusedProbeConfig()).generate(m, DX, LAM)
    inten = np.abs(p) ** 2
    border = max(inten[0].max(), inten[-1].max(), inten[:, 0].max(), inten[:, -1].max())
    assert 0.4 <= probe_diameter_px(p) / m <= 0.5
    assert border < 1e-3 * inten.max()
    focus = FocusedProbe(FocusedProbeConfig(defocus_m=0.0)).generate(m, DX, LAM)
    assert probe_diameter_px(focus) < 0.2 * m  # in focus: a small spot
    assert np.unravel_index(np.argmax(np.abs(focus)), focus.shape) == (m // 2, m // 2)


def test_probe_diameter_of_disk_and_gaussian_fwhm() -> None:
    disk = DiskProbe(DiskProbeConfig(diameter_px=40.0, edge_px=0.0)).generate(128, DX, LAM)
    # a flat disk of radius R holds 90 % inside radius R sqrt(0.9)
    assert probe_diameter_px(disk) == pytest.approx(40.0 * math.sqrt(0.9), rel=0.02)
    assert probe_diameter_px(disk, 1.0) == pytest.approx(40.0, abs=1.5)
    g = GaussianProbe(GaussianProbeConfig(fwhm_px=10.0)).generate(64, DX, LAM)
    inten = np.abs(g) ** 2
    assert inten[32, 37] / inten[32, 32] == pytest.approx(0.5, rel=1e-9)
    # 90 % of a 2-D Gaussian lies within r = sigma sqrt(2 ln 10)
    sigma = 10.0 / (2 * math.sqrt(2 * math.log(2)))
    assert probe_diameter_px(g) == pytest.approx(2 * sigma * math.sqrt(2 * math.log(10)), rel=0.02)


def test_incoherent_modes_orthogonal_with_decaying_power() -> None:
    p0 = FocusedProbe(FocusedProbeConfig()).generate(64, DX, LAM)
    modes = incoherent_modes(p0, 4, decay=0.5)
    gram = np.einsum("kij,lij->kl", modes.conj(), modes)
    power = np.real(np.diag(gram))
    assert np.abs(gram - np.diag(power)).max() < 1e-9 * power.max()
    assert power.sum() == pytest.approx(np.sum(np.abs(p0) ** 2), rel=1e-12)
    assert power[1:] / power[:-1] == pytest.approx([0.5, 0.5, 0.5], rel=1e-9)
    overlap0 = abs(np.vdot(modes[0], p0)) / (np.linalg.norm(modes[0]) * np.linalg.norm(p0))
    assert overlap0 == pytest.approx(1.0, abs=1e-12)


# ---------------------------------------------------------------- phantoms
def test_particles_ranges_and_coverage() -> None:
    cfg = ParticlesConfig()
    ph = ParticlesPhantom(cfg)
    o = ph.generate((160, 200), np.random.default_rng(1))
    phase, amp = np.angle(o), np.abs(o)
    lo = cfg.film_phase_rad - cfg.max_phase_rad - cfg.film_roughness_rad
    assert o.dtype == np.complex128 and o.shape == (160, 200)
    assert phase.min() >= lo - 1e-12 and phase.max() <= cfg.film_phase_rad + 1e-12
    assert phase.min() < lo + 0.1  # big particles reach close to the bottom of the range
    assert amp.max() <= 1.0 + 1e-12
    assert amp.min() >= math.exp(-cfg.beta_over_delta * (-lo)) - 1e-12
    depth = ph.phase_depth((160, 200), np.random.default_rng(1))
    assert depth.max() <= cfg.max_phase_rad + 1e-12  # no overlap in projection
    covered = np.mean(depth > 0)
    assert 0.15 < covered < 0.35  # about fill_fraction = 0.3


def test_siemens_star_values() -> None:
    cfg = SiemensStarConfig(n_spokes=16, phase_rad=-0.5, amplitude=0.8)
    o = SiemensStarPhantom(cfg).generate((128, 128), np.random.default_rng(0))
    phase, amp = np.angle(o), np.abs(o)
    assert phase.min() == pytest.approx(-0.5) and phase.max() == pytest.approx(0.0)
    assert amp.min() == pytest.approx(0.8) and amp.max() == pytest.approx(1.0)
    yy, xx = np.indices((128, 128)) + 0.5 - 64
    inner = np.hypot(yy, xx) < 50
    assert np.mean(phase[inner] / -0.5) == pytest.approx(0.5, abs=0.02)  # half covered
    ring = np.abs(np.hypot(yy, xx) - 40) < 0.5
    # 16 spokes: the phase along a ring changes sign 32 times
    angles = np.arctan2(yy[ring], xx[ring])
    on = phase[ring][np.argsort(angles)] < -0.25
    assert np.sum(on != np.roll(on, 1)) == 32


def test_natural_field_spectrum_and_ranges(reg: Registry) -> None:
    f = power_law_field((256, 256), np.random.default_rng(0), exponent=2.0)
    assert f.min() == 0.0 and f.max() == pytest.approx(1.0)
    spec = np.abs(np.fft.fft2(f - f.mean())) ** 2
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(256), indexing="ij"))
    bins = np.geomspace(0.02, 0.4, 12)
    mids, power = [], []
    for a, b in zip(bins[:-1], bins[1:], strict=True):
        sel = (k >= a) & (k < b)
        mids.append(np.sqrt(a * b))
        power.append(spec[sel].mean())
    slope = np.polyfit(np.log(mids), np.log(power), 1)[0]
    assert slope == pytest.approx(-2.0, abs=0.3)
    o = reg.build("phantom", "natural").generate((64, 64), np.random.default_rng(0))
    assert np.abs(o).min() == pytest.approx(0.8) and np.abs(o).max() == pytest.approx(1.0)
    assert np.angle(o).min() == pytest.approx(-0.6) and np.angle(o).max() == pytest.approx(0.0)


# ---------------------------------------------------------------- scans
def test_raster_overlap_from_positions(reg: Registry) -> None:
    d = small(reg, scan={"n_y": 3, "n_x": 5, "overlap": 0.6, "jitter_px": 0.0}, noise="none")
    pos = d.geometry.positions_px
    assert pos.shape == (15, 2)
    step_y = np.diff(np.unique(pos[:, 0]))
    step_x = np.diff(np.unique(pos[:, 1]))
    assert np.allclose(step_y, step_y[0]) and np.allclose(step_x, step_y[0])
    measured = 1.0 - step_x[0] / probe_diameter_px(d.truth.probe)
    assert measured == pytest.approx(0.6, abs=1e-5)
    assert d.attrs["overlap"] == 0.6
    assert tuple(pos.min(axis=0)) == (0.0, 0.0)


def test_raster_fixed_step_and_whole_pixel_jitter(reg: Registry) -> None:
    scan = {"n_y": 4, "n_x": 3, "step_px": 5.0, "jitter_px": 2.0, "integer_positions": True}
    d = small(reg, scan=scan, noise="none")
    pos = d.geometry.positions_px
    assert np.array_equal(pos, np.round(pos)) and pos.min() == 0.0
    flat = small(reg, scan={**scan, "jitter_px": 0.0}, noise="none").geometry.positions_px
    assert np.array_equal(np.unique(flat[:, 0]), [0.0, 5.0, 10.0, 15.0])
    dev = (pos - pos.mean(axis=0)) - (flat - flat.mean(axis=0))
    assert 0.5 < np.abs(dev).max() <= 4.0
    expected = 1.0 - 5.0 / probe_diameter_px(d.truth.probe)
    assert d.attrs["overlap"] == pytest.approx(expected)
    with pytest.raises(ConfigError, match="step_px"):
        RasterScanConfig(step_px=0.0)


def test_raster_jitter_bounded_and_margin(reg: Registry) -> None:
    scan = reg.build(
        "scan", {"name": "raster", "n_y": 5, "n_x": 5, "jitter_px": 1.5, "margin_px": 3.0}
    )
    flat = reg.build("scan", {"name": "raster", "n_y": 5, "n_x": 5, "jitter_px": 0.0})
    a = scan.generate(20.0, np.random.default_rng(0))
    b = flat.generate(20.0, np.random.default_rng(0))
    assert np.allclose(a.min(axis=0), 3.0)
    dev = (a - a.mean(axis=0)) - (b - b.mean(axis=0))
    assert 0.5 < np.abs(dev).max() <= 3.0  # +-1.5 px per position, less the common shift
    assert not np.allclose(a, np.round(a))


def test_fermat_count_and_spacing(reg: Registry) -> None:
    scan = reg.build("scan", {"name": "fermat", "n_points": 90, "overlap": 0.75})
    pos = scan.generate(40.0, np.random.default_rng(0))
    nn = nearest_neighbour_px(pos)
    step = (1 - 0.75) * 40.0
    assert pos.shape == (90, 2) and pos.min() == 0.0
    assert np.median(nn) == pytest.approx(step, rel=1e-9)
    assert nn.min() >= 0.9 * step


# ---------------------------------------------------------------- dose, physics, noise
def test_photons_per_pattern_and_parseval(reg: Registry) -> None:
    d = small(
        reg,
        phantom=PURE_PHASE,
        noise="none",
        photons_per_pattern=2.5e6,
        scan={"n_y": 3, "n_x": 3, "jitter_px": 0.7},
    )
    counts = d.patterns[0].astype(np.float64).sum(axis=(1, 2))
    assert counts.mean() == pytest.approx(2.5e6, rel=1e-6)
    # pure phase object: every pattern holds the probe power (Parseval, unitary FFT)
    assert np.allclose(counts, np.sum(np.abs(d.truth.probe.astype(np.complex128)) ** 2), rtol=1e-6)


def test_patterns_match_numpy_far_field(reg: Registry) -> None:
    d = small(
        reg, noise="none", scan={"n_y": 3, "n_x": 3, "integer_positions": True}, probe_modes=2
    )
    o = d.truth.object[0].astype(np.complex128)
    p = d.truth.probe.astype(np.complex128)
    m = p.shape[-1]
    for t, (y, x) in enumerate(d.geometry.positions_px.astype(int)):
        exit_wave = o[y : y + m, x : x + m] * p
        want = np.fft.fftshift(
            np.abs(np.fft.fft2(exit_wave, norm="ortho")) ** 2, axes=(-2, -1)
        ).sum(axis=0)
        assert np.allclose(d.patterns[0, t], want, rtol=1e-4, atol=1e-6 * want.max())
    assert d.truth.probe.shape == (2, m, m)


def test_i0_origin_is_mean_zero_frequency_intensity(reg: Registry) -> None:
    d = small(reg, noise="none", i0_origin=1e8, scan={"n_y": 4, "n_x": 4, "jitter_px": 0.0})
    m = d.geometry.window[0]
    origin = d.patterns[0, :, m // 2, m // 2].astype(np.float64)
    assert origin.mean() == pytest.approx(1e8, rel=1e-6)
    assert d.attrs["dose_mode"] == "i0_origin"
    assert d.attrs["i0_origin"] == pytest.approx(1e8, rel=1e-9)
    # with one mode, I(0) = |sum of the exit wave|^2 / M^2
    o, p = d.truth.object[0].astype(np.complex128), d.truth.probe[0].astype(np.complex128)
    assert tuple(d.geometry.positions_px[0]) == (0.0, 0.0)
    want = abs(np.sum(o[:m, :m] * p)) ** 2 / m**2
    assert origin[0] == pytest.approx(want, rel=1e-4)


def test_poisson_noise_flat_case(reg: Registry) -> None:
    """A one-pixel probe gives flat patterns: Poisson counts have variance = mean."""
    m = 32
    cfg = SimulationConfig(window_px=m, photons_per_pattern=100.0 * m * m, seed=5)
    probe = DiskProbe(DiskProbeConfig(diameter_px=0.5, edge_px=0.0))
    vacuum = reg.build("phantom", {"name": "natural", "amplitude_min": 1.0, "phase_min_rad": 0.0})
    scan = FixedScan(np.zeros((20, 2)))
    d = Simulator(cfg).run(vacuum, probe, scan)
    x = d.patterns[0].astype(np.float64)
    assert np.all(x == np.round(x))  # counts
    assert x.mean() == pytest.approx(100.0, rel=0.01)
    assert x.var() == pytest.approx(100.0, rel=0.05)


def test_poisson_noise_statistics_and_streams(reg: Registry) -> None:
    clean = small(reg, noise="none", photons_per_pattern=1e6, seed=3)
    noisy = small(reg, noise="poisson", photons_per_pattern=1e6, seed=3)
    # the noise stream is separate: phantom, scan and probe are unchanged
    assert np.array_equal(clean.truth.object, noisy.truth.object)
    assert np.array_equal(clean.geometry.positions_px, noisy.geometry.positions_px)
    lam = clean.patterns.astype(np.float64)
    sel = lam > 20
    z = (noisy.patterns.astype(np.float64)[sel] - lam[sel]) / np.sqrt(lam[sel])
    assert sel.sum() > 2000
    assert abs(z.mean()) < 0.05 and z.var() == pytest.approx(1.0, abs=0.06)


def test_illumination_sums_probe_power(reg: Registry) -> None:
    d = small(reg, noise="none", probe_modes=2, scan={"n_y": 3, "n_x": 4, "jitter_px": 0.5})
    power = np.sum(np.abs(d.truth.probe.astype(np.complex128)) ** 2)
    illum = d.truth.illumination
    assert illum.shape == d.geometry.object_shape == d.truth.object.shape[1:]
    assert illum.sum() == pytest.approx(12 * power, rel=1e-5)  # Fourier shifts keep power
    assert illum.min() >= -1e-6 * illum.max()


def test_reproducible_with_seed(reg: Registry) -> None:
    kw = dict(scan={"n_y": 3, "n_x": 3, "jitter_px": 1.0})
    a, b, c = small(reg, seed=7, **kw), small(reg, seed=7, **kw), small(reg, seed=8, **kw)
    assert np.array_equal(a.patterns, b.patterns)
    assert np.array_equal(a.truth.object, b.truth.object)
    assert np.array_equal(a.geometry.positions_px, b.geometry.positions_px)
    assert not np.array_equal(a.truth.object, c.truth.object)
    assert not np.array_equal(a.geometry.positions_px, c.geometry.positions_px)


def test_object_margin(reg: Registry) -> None:
    a = small(reg, noise="none", scan={"n_y": 2, "n_x": 2})
    b = small(reg, noise="none", scan={"n_y": 2, "n_x": 2}, object_margin_px=5)
    assert np.allclose(b.geometry.positions_px, a.geometry.positions_px + 5)
    ny, nx = a.geometry.object_shape
    assert b.geometry.object_shape == (ny + 10, nx + 10)


# ---------------------------------------------------------------- files
def test_write_and_reopen(reg: Registry, tmp_path) -> None:
    import h5py

    from ptyframe.data.dataset import PtychoDataset

    d = small(reg, phantom="siemens_star", scan={"name": "fermat", "n_points": 12})
    path = tmp_path / "sim.h5"
    d.write(path)
    ds = PtychoDataset.open(path)
    g = ds.geometry
    assert ds.shape == (1, 12, 32, 32)
    assert np.array_equal(g.positions_px, d.geometry.positions_px)
    assert g.window == (32, 32) and tuple(g.object_shape) == d.geometry.object_shape
    assert g.energy_ev == pytest.approx(8000.0) and g.pixel_size_m == pytest.approx(20e-9)
    assert np.array_equal(ds.intensities(), d.patterns[0])
    assert ds.has_truth
    assert np.array_equal(ds.truth.object, d.truth.object)
    assert np.array_equal(ds.truth.probe, d.truth.probe)
    assert np.allclose(ds.truth.illumination, d.truth.illumination)
    with h5py.File(path, "r") as f:
        assert f.attrs["phantom"] == "siemens_star" and f.attrs["scan"] == "fermat"
        assert json.loads(f.attrs["scan_config"])["n_points"] == 12
        assert json.loads(f.attrs["simulation_config"])["window_px"] == 32
        assert int(f.attrs["seed"]) == 0
    with pytest.raises(FileExistsError):
        d.write(path)
    d.write(path, overwrite=True)


def test_simulation_config_roundtrip_in_attrs(reg: Registry) -> None:
    d = small(reg, noise="none", seed=4)
    cfg = SimulationConfig(**json.loads(d.attrs["simulation_config"]))
    assert dataclasses.asdict(cfg)["seed"] == 4 and cfg.window_px == 32
