"""Check every forward model: autograd gradients, physical identities, small reconstructions."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import ptyframe
from ptyframe.data.geometry import ScanGeometry
from ptyframe.data.measurements import Measurements
from ptyframe.engines.autodiff import AutodiffConfig, AutodiffEngine, OptimizerGroups, RefineFlags
from ptyframe.errors import ConfigError
from ptyframe.optimizers import AdamConfig
from ptyframe.physics.base import Batch, ForwardModel
from ptyframe.physics.farfield import FarFieldPtychography
from ptyframe.physics.fullfield import FullFieldConfig, FullFieldModel
from ptyframe.physics.holography import HolographyConfig, HolographyModel
from ptyframe.physics.multislice import MultisliceConfig, PtychoModel, as_model
from ptyframe.physics.nearfield import NearFieldConfig
from ptyframe.physics.objects import refractive_transmission
from ptyframe.physics.refinement import rotate_volume, rotation_matrix
from ptyframe.physics.tomography import TomographyConfig, TomographyModel
from ptyframe.state import ReconstructionState

E_EV, DX = 8000.0, 1e-8
C128 = torch.complex128


def rand_c(shape: tuple[int, ...], seed: int, spread: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    re = torch.randn(shape, generator=g, dtype=torch.float64)
    im = torch.randn(shape, generator=g, dtype=torch.float64)
    return (1.0 + spread * torch.complex(re, im)).to(C128)


def small_case(
    n_slices: int = 1,
    n_tiles: int = 3,
    window: int = 8,
    size: int = 14,
    free_prop_m: tuple[float, ...] = (),
    thetas: tuple[float, ...] = (0.0,),
) -> tuple[ScanGeometry, ReconstructionState, SimpleNamespace]:
    pos = np.array([[1.3, 2.6], [4.7, 0.2], [3.1, 5.5], [0.4, 0.9]][:n_tiles], dtype=np.float64)
    geom = ScanGeometry(pos, (window, window), (size, size), E_EV, DX, free_prop_m, thetas)
    state = ReconstructionState(
        rand_c((n_slices, size, size), 1),
        rand_c((2, window, window), 2, 1.0),
        torch.from_numpy(pos.copy()),
    )
    dataset = SimpleNamespace(geometry=geom, n_angles=len(thetas))
    return geom, state, dataset


def gradcheck_model(model, state: ReconstructionState, batches: list[Batch]) -> None:
    """Check d(intensities)/d(every refinable unknown) against finite differences.

    The unknowns are perturbed in the optimiser's units (``value / scale``), as the engine
    differentiates them.
    """
    unknowns = model.unknowns(state)
    names = [n for n, u in unknowns.items() if not u.fixed or n in ("probe",)]
    fixed = {n: u.value for n, u in unknowns.items() if n not in names}
    params = [
        (unknowns[n].value.detach() / unknowns[n].scale).clone().requires_grad_() for n in names
    ]

    def f(*ps: torch.Tensor) -> torch.Tensor:
        v = dict(fixed)
        v.update({n: p * unknowns[n].scale for n, p in zip(names, ps, strict=False)})
        return torch.cat([model.predict(v, b).reshape(-1) for b in batches])

    assert len(names) >= 3
    assert torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


def test_farfield_gradients() -> None:
    geom, state, _ = small_case()
    from ptyframe.engines.autodiff import as_model

    model = as_model(FarFieldPtychography())
    model.setup(geom)
    gradcheck_model(model, state, [Batch(0, torch.arange(3))])


def test_dense_multislice_gradients() -> None:
    geom, state, _ = small_case(n_slices=2)
    model = PtychoModel(MultisliceConfig(n_slices=2, slice_spacing_m=2e-6))
    model.setup(geom)
    gradcheck_model(model, state, [Batch(0, torch.arange(3))])


def test_sparse_refractive_multislice_gradients_with_geometry_refinement() -> None:
    geom, state, ds = small_case(n_slices=2, thetas=(0.0, 0.5))
    cfg = MultisliceConfig(
        n_slices=2,
        slice_positions_m=[0.0, 2e-6],
        refine_slice_positions=True,
        unknown="refractive_index",
        kappa=0.2,
        refine_kappa=True,
        probe_defocus_m=1e-6,
        refine_defocus=True,
        refine_angle_offsets=True,
        propagator="angular_spectrum",
    )
    model = PtychoModel(cfg)
    state = model.init_state(state, ds)
    gradcheck_model(model, state, [Batch(0, torch.arange(2)), Batch(1, torch.tensor([2]))])


def test_pure_projection_gradients_and_identity() -> None:
    geom, state, _ = small_case(n_slices=3)
    model = PtychoModel(MultisliceConfig(n_slices=3, pure_projection=True))
    model.setup(geom)
    gradcheck_model(model, state, [Batch(0, torch.arange(3))])
    # the projection of three slices is one slice holding their product
    one = PtychoModel(MultisliceConfig(n_slices=1))
    one.setup(geom)
    v = {"object": state.object, "probe": state.probe, "positions": state.positions_px}
    v1 = dict(v, object=state.object.prod(0, keepdim=True))
    b = Batch(0, torch.arange(3))
    assert torch.allclose(model.predict(v, b), one.predict(v1, b), rtol=1e-10)


def test_nearfield_gradients_with_free_propagation_refinement() -> None:
    geom, state, _ = small_case(free_prop_m=(1e-5,))
    model = ptyframe.registry().build(
        "forward_model", NearFieldConfig(refine_free_prop=True, detector="angular_spectrum")
    )
    model.setup(geom)
    gradcheck_model(model, state, [Batch(0, torch.arange(3))])


def test_holography_gradients_with_distances_and_affine() -> None:
    geom, state, _ = small_case(n_tiles=4, free_prop_m=(1e-5, 2e-5))
    model = HolographyModel(
        HolographyConfig(refine_free_prop=True, refine_affine=True, refine_probe=True)
    )
    model.setup(geom)
    assert model.tiles_per_distance == 2
    model.unknowns(state)
    # bilinear resampling has kinks at the pixel grid: check away from the identity
    state.extras["affine"].copy_(
        torch.tensor(
            [
                [0.02, 0.01, -0.02, 0.03, -0.01, 0.3, -0.2],
                [-0.01, 0.02, 0.01, -0.02, 0.02, -0.4, 0.1],
            ]
        )
    )
    gradcheck_model(model, state, [Batch(0, torch.arange(4))])


def test_fullfield_gradients() -> None:
    geom, state, _ = small_case(n_tiles=1, size=8)
    state.positions_px.fill_(0.5)  # fractional: finite differences must not cross 0
    model = FullFieldModel(FullFieldConfig(refine_probe=True))
    model.setup(geom)
    gradcheck_model(model, state, [Batch(0, torch.arange(1))])


def test_tomography_gradients_with_tilt_and_offsets() -> None:
    geom, state, ds = small_case(n_tiles=2, window=4, size=6, thetas=(0.3, 1.1))
    state = ReconstructionState(state.object[:1], state.probe, state.positions_px * 0.3)
    model = TomographyModel(TomographyConfig(refine_tilt=True, refine_angle_offsets=True))
    state = model.init_state(state, ds)
    g = torch.Generator().manual_seed(3)
    for k in ("delta", "beta"):
        state.extras[k] = torch.rand(state.extras[k].shape, generator=g, dtype=torch.float64)
        state.extras[k] *= 0.2 / model.obj.k_dz
    state.extras["tilt_rad"] = torch.tensor(
        [[0.05, -0.02, 0.03], [0.01, 0.02, -0.04]], dtype=torch.float64
    )
    gradcheck_model(model, state, [Batch(0, torch.arange(2)), Batch(1, torch.arange(2))])


# ---------------------------------------------------------------------- identities
def test_vacuum_second_slice_leaves_far_field_intensities_unchanged() -> None:
    geom, state, _ = small_case(n_slices=2)
    two = torch.stack([state.object[0], torch.ones_like(state.object[0])])
    ms = PtychoModel(MultisliceConfig(n_slices=2, slice_spacing_m=3e-6))
    ms.setup(geom)
    v = {"object": two, "probe": state.probe, "positions": state.positions_px}
    ff = FarFieldPtychography().intensities(state.object[:1], state.probe, state.positions_px)
    b = Batch(0, torch.arange(3))
    assert torch.allclose(ms.predict(v, b), ff, rtol=1e-9)
    # but a structured second slice does change them
    v["object"] = state.object
    assert not torch.allclose(ms.predict(v, b), ff, rtol=1e-3)


def test_sparse_slices_at_the_dense_spacing_reproduce_dense_multislice() -> None:
    geom, state, _ = small_case(n_slices=3)
    dense = PtychoModel(MultisliceConfig(n_slices=3, slice_spacing_m=1e-6))
    sparse = PtychoModel(MultisliceConfig(n_slices=3, slice_positions_m=[0.0, 1e-6, 2e-6]))
    dense.setup(geom)
    sparse.setup(geom)
    v = {
        "object": state.object,
        "probe": state.probe,
        "positions": state.positions_px,
        "slice_positions_m": torch.tensor([0.0, 1e-6, 2e-6], dtype=torch.float64),
    }
    b = Batch(0, torch.arange(3))
    assert torch.allclose(dense.predict(v, b), sparse.predict(v, b), rtol=1e-9)


def test_refractive_transmission_follows_the_positive_phase_convention() -> None:
    delta = torch.tensor([1e-6], dtype=torch.float64)
    beta = torch.tensor([1e-7], dtype=torch.float64)
    k_dz = 2 * math.pi / 1.5e-10 * 1e-8
    t = refractive_transmission(delta, beta, k_dz)
    assert torch.allclose(torch.angle(t), -k_dz * delta)  # exp(-i k delta dz)
    assert torch.allclose(t.abs(), torch.exp(-k_dz * beta))  # exp(-k beta dz)


def test_near_field_at_zero_distance_is_the_exit_intensity() -> None:
    geom, state, _ = small_case(free_prop_m=(1e-30,))
    model = PtychoModel(NearFieldConfig())
    model.setup(geom)
    v = {
        "object": state.object,
        "probe": state.probe,
        "positions": state.positions_px,
        "free_prop_m": torch.tensor([0.0], dtype=torch.float64),
    }
    exit_wave = FarFieldPtychography().exit_waves(state.object, state.probe, state.positions_px)
    expected = torch.fft.ifftshift(exit_wave.abs().square().sum(1), dim=(-2, -1))  # detector order
    assert torch.allclose(model.predict(v, Batch(0, torch.arange(3))), expected, rtol=1e-9)


def test_rotation_by_90_degrees_turns_the_z_projection_into_the_x_projection() -> None:
    n = 8
    g = torch.Generator().manual_seed(0)
    vol = torch.rand(1, n, n, n, generator=g, dtype=torch.float64)  # [C, z, y, x]
    rot = rotate_volume(vol, rotation_matrix(torch.tensor(math.pi / 2)))
    assert torch.allclose(rot[0].sum(0), vol[0].sum(2).T, atol=1e-9)  # (y, x) <- (y, z)
    same = rotate_volume(vol, rotation_matrix(torch.tensor(0.0)))
    assert torch.allclose(same, vol, atol=1e-12)


def test_support_projection_and_shrink_wrap() -> None:
    from ptyframe.physics.objects import ObjectModel, ObjectOptions

    n = 32
    y, x = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    blob = ((y - 12) ** 2 + (x - 18) ** 2 < 25).double()
    obj = torch.polar(torch.ones(n, n, dtype=torch.float64), -0.5 * blob)[None]
    state = ReconstructionState(
        obj.clone(), torch.ones(1, 4, 4, dtype=C128), torch.zeros(1, 2, dtype=torch.float64)
    )
    model = ObjectModel(
        ObjectOptions(support=True, shrinkwrap_sigma_px=1.0, shrinkwrap_threshold=0.2), 1e-10, 1e-8
    )
    state = model.init_state(state, 1)
    assert bool(state.extras["support"].all())
    assert model.update_support({"object": state.object}, state)
    sup = state.extras["support"]
    assert bool(sup[blob > 0].all())  # the object is inside
    assert int(sup.sum()) < 3 * int(blob.sum())  # and the support is tight around it
    noisy = state.object + 0.1
    model.unknowns(state)["object"].project(noisy)
    assert torch.all(noisy[0][~sup] == 1.0)  # vacuum outside
    assert torch.equal(noisy[0][sup], state.object[0][sup] + 0.1)


def test_fullfield_starts_from_the_autocorrelation_support() -> None:
    m = 32
    geom = ScanGeometry(np.zeros((1, 2)), (m, m), (m, m), E_EV, DX)
    y, x = torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")
    obj = (((y - 16) ** 2 + (x - 16) ** 2) < 36).to(C128)[None]  # an isolated disk, r = 6
    inten = torch.fft.fft2(obj, norm="ortho").abs().square()
    ds = SimpleNamespace(
        geometry=geom,
        n_angles=1,
        intensities=lambda a: torch.fft.fftshift(inten, dim=(-2, -1)).numpy(),
    )
    state = ReconstructionState(
        torch.ones(1, m, m, dtype=C128),
        torch.ones(1, m, m, dtype=C128),
        torch.zeros(1, 2, dtype=torch.float64),
    )
    model = FullFieldModel(FullFieldConfig())
    state = model.init_state(state, ds)
    sup = state.extras["support"]
    # the autocorrelation of a disk of radius 6 reaches radius 12 (above 4 % of max: ~10)
    assert bool(sup[16, 16 + 9]) and not bool(sup[16, 16 + 12]) and not bool(sup[0, 0])
    assert torch.all(state.object[0][~sup] == 0)  # an isolated object: zero outside
    photons = float(inten.sum())
    assert math.isclose(float(state.probe.abs().square().sum()), photons, rel_tol=1e-9)


def test_registry_builds_every_forward_model() -> None:
    """Every registered forward model is a ``ForwardModel`` (what engine=autodiff takes)."""
    reg = ptyframe.registry()
    names = reg.names("forward_model")
    assert {"farfield", "multislice", "nearfield", "multidistance_holography"} <= set(names)
    assert {"fullfield_cdi", "multislice_tomography"} <= set(names)
    for name in names:
        model = reg.build("forward_model", name)
        assert isinstance(model, ForwardModel), name
        assert as_model(model) is model


def test_as_model_refuses_what_is_not_a_forward_model() -> None:
    """Something without the ``ForwardModel`` contract is one error naming the choices."""
    with pytest.raises(ConfigError, match="is not a ptyframe.physics.base.ForwardModel"):
        as_model(object())  # type: ignore[arg-type]


# ---------------------------------------------------------------------- reconstructions
def features(ny: int, nx: int, seed: int, n: int, sigma: float = 1.2) -> torch.Tensor:
    """Return ``n`` random Gaussian dots of width ``sigma`` px, max 1 ``[ny, nx]`` float64."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:ny, :nx]
    f = np.zeros((ny, nx))
    for _ in range(n):
        cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
        f += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
    return torch.from_numpy(f / f.max())


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.double() - a.double().mean()
    b = b.double() - b.double().mean()
    return float((a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum()))


def disk_probe(m: int, r: float, photons: float, defocus: float) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(m) - m // 2, torch.arange(m) - m // 2, indexing="ij")
    rr = torch.sqrt(y.double() ** 2 + x.double() ** 2)
    p = torch.polar(torch.clamp(r - rr + 1, 0, 1), defocus * (rr / r) ** 2)[None]
    return (p * math.sqrt(photons / float(p.abs().square().sum()))).to(torch.complex64)


def raster(n: int, step: int, jitter: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.meshgrid(np.arange(n) * step, np.arange(n) * step, indexing="ij")
    pos = np.stack([yy.ravel(), xx.ravel()], 1).astype(np.float64)
    pos += rng.uniform(-jitter, jitter, pos.shape)
    return pos - pos.min(0)


def run(engine: AutodiffEngine, meas, state: ReconstructionState, epochs: int) -> float:
    engine.prepare(meas, state)
    err = math.nan
    for e in range(epochs):
        err = engine.step(e).data_error
    return err


def two_slice(
    m: int, nscan: int, epochs: int, lr: float = 0.02, minibatch: int = 9
) -> tuple[list[list[float]], float]:
    torch.manual_seed(0)
    pos = raster(nscan, m // 4, 1.0)
    ny, nx = int(math.ceil(pos[:, 0].max())) + m, int(math.ceil(pos[:, 1].max())) + m
    geom = ScanGeometry(pos, (m, m), (ny, nx), E_EV, DX)
    dz = 40 * DX**2 / geom.wavelength_m  # 40 depths of field apart
    f = [features(ny, nx, 1, ny * nx // 86), features(ny, nx, 2, ny * nx // 86)]
    truth = torch.stack([torch.polar(torch.ones_like(fi), -0.6 * fi) for fi in f])
    model = PtychoModel(MultisliceConfig(n_slices=2, slice_spacing_m=dz))
    model.setup(geom)
    probe = disk_probe(m, m / 4, 1e7, 3.0)
    v = {"object": truth.to(torch.complex64), "probe": probe, "positions": torch.from_numpy(pos)}
    inten = model.predict(v, Batch(0, torch.arange(len(pos))))
    meas = Measurements(inten.sqrt(), None, np.arange(len(pos)), geom)
    state = ReconstructionState(
        torch.ones(2, ny, nx, dtype=torch.complex64), probe.clone(), torch.from_numpy(pos.copy())
    )
    groups = OptimizerGroups(object=AdamConfig(lr=lr))
    engine = AutodiffEngine(
        AutodiffConfig(
            epochs=epochs, minibatch=minibatch, optimizers=groups, refine=RefineFlags(probe=False)
        ),
        physics=model,
    )
    err = run(engine, meas, state, epochs)
    inner = (slice(m // 4, ny - m // 4), slice(m // 4, nx - m // 4))
    phase = [-torch.angle(state.object[i])[inner] for i in range(2)]
    return [[corr(phase[i], f[j][inner]) for j in range(2)] for i in range(2)], err


def test_two_slice_object_is_separated_small() -> None:
    c, err = two_slice(32, 6, 60)
    assert err < 0.05
    assert c[0][0] > 0.9 and c[1][1] > 0.9, c
    assert abs(c[0][1]) < 0.3 and abs(c[1][0]) < 0.3, c


@pytest.mark.slow
def test_two_slice_object_is_separated() -> None:
    c, _ = two_slice(48, 8, 300, lr=0.01, minibatch=16)
    assert c[0][0] > 0.9 and c[1][1] > 0.9, c
    assert abs(c[0][1]) < 0.3 and abs(c[1][0]) < 0.3, c


def test_multidistance_holography_reconstructs_phase_and_absorption() -> None:
    m = 64
    dx, energy = 1e-7, 10000.0
    pos = np.zeros((3, 2))
    lam = ScanGeometry(pos, (m, m), (m, m), energy, dx).wavelength_m
    dists = tuple(f * m * dx**2 / lam / 4 for f in (0.5, 0.8, 1.3))
    geom = ScanGeometry(pos, (m, m), (m, m), energy, dx, dists)
    f = features(m, m, 3, m * m // 30, 1.5)
    obj = torch.polar(torch.exp(-0.1 * f), -0.8 * f).to(torch.complex64)[None]
    sim = HolographyModel(HolographyConfig())
    sim.setup(geom)
    v = {
        "object": obj,
        "probe": torch.ones(1, m, m, dtype=torch.complex64),
        "positions": torch.from_numpy(pos),
        "free_prop_m": torch.tensor(dists),
    }
    inten = sim.predict(v, Batch(0, torch.arange(3)))
    meas = Measurements(inten.sqrt(), None, np.arange(3), geom)
    model = HolographyModel(HolographyConfig(unknown="refractive_index"))
    ds = SimpleNamespace(
        geometry=geom,
        n_angles=1,
        intensities=lambda a: np.fft.fftshift(inten.numpy(), axes=(-2, -1)),
    )
    state = ReconstructionState(
        torch.ones(1, m, m, dtype=torch.complex64),
        torch.ones(1, m, m, dtype=torch.complex64),
        torch.from_numpy(pos.copy()),
    )
    state = model.init_state(state, ds)
    assert torch.allclose(state.probe.abs().mean(), inten.mean().sqrt(), rtol=1e-5)
    groups = OptimizerGroups(object=AdamConfig(lr=0.02))
    engine = AutodiffEngine(
        AutodiffConfig(epochs=150, minibatch=3, optimizers=groups, refine=RefineFlags(probe=False)),
        physics=model,
    )
    err = run(engine, meas, state, 150)
    assert err < 2e-3
    assert corr(state.extras["delta"][0], f) > 0.95
    assert corr(state.extras["beta"][0], f) > 0.95
    assert corr(-torch.angle(state.object[0]), f) > 0.95  # the stored transmission view


def tomography(n: int, m: int, n_angles: int, epochs: int, pure: bool) -> float:
    step = m // 2
    pos = raster((n - m) // step + 1, step, 0.0)
    thetas = tuple(np.linspace(0, np.pi, n_angles, endpoint=False))
    geom = ScanGeometry(pos, (m, m), (n, n), E_EV, DX, (), thetas)
    k_dz = 2 * math.pi / geom.wavelength_m * DX
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    vol = np.zeros((n, n, n))
    for _ in range(8):
        c = rng.uniform(-n / 4, n / 4, 3)
        r = rng.uniform(n / 10, n / 5)
        vol += np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * r**2))
    vol *= np.sqrt(z**2 + x**2) < n / 2 - 1
    delta = torch.from_numpy(vol / vol.max() * 0.08 / k_dz).float()
    cfg = TomographyConfig(pure_projection=pure)
    model = TomographyModel(cfg)
    model.setup(geom, n_angles)
    probe = disk_probe(m, m / 3, 1e6, 1.0)
    v = {"delta": delta, "beta": 0.1 * delta, "probe": probe, "positions": torch.from_numpy(pos)}
    meas = []
    for a in range(n_angles):
        inten = model.predict(v, Batch(a, torch.arange(len(pos))))
        meas.append(Measurements(inten.sqrt(), None, np.arange(len(pos)), geom, angle=a))
    ds = SimpleNamespace(geometry=geom, n_angles=n_angles)
    state = ReconstructionState(
        torch.ones(1, n, n, dtype=torch.complex64), probe.clone(), torch.from_numpy(pos.copy())
    )
    model = TomographyModel(cfg)
    state = model.init_state(state, ds)
    assert state.extras["delta"].shape == (n, n, n)
    groups = OptimizerGroups(object=AdamConfig(lr=0.001))
    engine = AutodiffEngine(
        AutodiffConfig(
            epochs=epochs, minibatch=len(pos), optimizers=groups, refine=RefineFlags(probe=False)
        ),
        physics=model,
    )
    assert engine.wants_all_angles
    run(engine, meas, state, epochs)
    return corr(state.extras["delta"], delta)


def test_small_ptycho_tomography_reconstructs() -> None:
    assert tomography(16, 8, 16, 15, pure=False) > 0.9


@pytest.mark.slow
def test_ptycho_tomography_32_cubed_reconstructs() -> None:
    assert tomography(32, 16, 24, 20, pure=False) > 0.9
