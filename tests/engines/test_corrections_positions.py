"""Position correction (``engines.corrections.positions``) and the scan map (``affine``).

The contract tests of the frame's position correction: run from ``pie_driver`` (a plain torch
ePIE sweep calling the hooks) until the engine frame carries them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ptyframe.engines.corrections import coarse, position_kernels
from ptyframe.engines.corrections.affine import (
    ScanMap,
    decompose,
    fit_scan_map,
    position_rms_px,
)
from ptyframe.engines.corrections.base import CorrectionContext
from ptyframe.engines.corrections.config import PositionConfig
from ptyframe.engines.corrections.positions import (
    PositionCorrection,
    limit_steps,
    map_part,
    position_sums,
    solve_shifts,
)
from ptyframe.errors import ConfigError
from ptyframe.simulation.nuisances import scan_matrix
from ptyframe.simulation.simulate import simulate_dataset

import pie_driver as drv

PARTICLES = {"name": "particles", "max_phase_rad": 1.0, "radius_max_px": 10.0}


def _random(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, dtype=dtype, generator=g)


@pytest.mark.skipif(not position_kernels.available(), reason="numba absent")
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
@pytest.mark.parametrize(("modes", "window"), [(1, (2, 3)), (1, (17, 16)), (3, (16, 17))])
def test_numba_sums_equal_the_torch_reference(dtype, modes, window) -> None:
    """The kernel fills the torch reference's five sums (catches a wrong stencil on an edge, a
    dropped mode, a mixed-up y/x, or an accumulation in the wrong precision)."""
    obj = _random((40, 41), dtype, 1)
    m, n = window
    p = _random((modes, m, n), dtype, 2)
    d = _random((modes, m, n), dtype, 3)
    y0, x0 = 7, 11
    ref = position_sums(obj[y0 : y0 + m, x0 : x0 + n], p, d).numpy()
    out = np.zeros(5)
    k = position_kernels.kernels()
    half = position_kernels.half_of(obj.numpy().dtype)
    if modes == 1:
        k.position_sums1(obj.numpy(), y0, x0, p[0].numpy(), d[0].numpy(), out, half)
    else:
        k.position_sums(obj.numpy(), y0, x0, p.numpy(), d.numpy(), out, half)
    tol = 1e-5 if dtype == torch.complex64 else 1e-12
    assert np.allclose(out, ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_batched_sums_equal_single_ones() -> None:
    """``[B, ...]`` inputs give the rows of the single-position sums (shared probe or not)."""
    o = _random((3, 12, 12), torch.complex128, 4)
    p = _random((2, 12, 12), torch.complex128, 5)
    chi = _random((3, 2, 12, 12), torch.complex128, 6)
    batch = position_sums(o, p, chi)
    for b in range(3):
        assert torch.allclose(batch[b], position_sums(o[b], p, chi[b]))


@pytest.mark.parametrize("shared", [True, False])
def test_a_batch_observed_on_the_cpu_adds_the_torch_sums(shared: bool) -> None:
    """``observe`` of a CPU batch (the compiled path of the minibatch sweeps) adds the torch
    reference's rows, a position seen twice in a batch twice (catches a window read at the
    wrong corner, a shared probe taken per position, or rows added to the wrong position)."""
    o = _random((4, 12, 12), torch.complex128, 7)
    p = _random((2, 12, 12) if shared else (4, 2, 12, 12), torch.complex128, 8)
    chi = _random((4, 2, 12, 12), torch.complex128, 9)
    pc = PositionCorrection(PositionConfig(start=0))
    pc.sums = np.zeros((6, 5))
    pc.begin_epoch(0)
    pc.observe(torch.tensor([5, 1, 3, 1]), o, p, chi)
    ref = position_sums(o, p, chi).numpy()
    want = np.zeros((6, 5))
    np.add.at(want, [5, 1, 3, 1], ref)
    assert np.allclose(pc.sums, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_sums_recover_a_small_shift_of_the_object() -> None:
    """For ``chi`` = the exact first-order change of the exit wave under a shift ``delta``, the
    2x2 solve returns ``delta`` (catches a sign, a swapped axis or a wrong normal equation)."""
    y, x = np.mgrid[:48, :48] / 48.0
    obj = torch.from_numpy(np.exp(1j * (np.sin(7 * y) + np.cos(5 * x + 3 * y))))
    probe = torch.from_numpy(np.exp(-((y - 0.5) ** 2 + (x - 0.5) ** 2) / 0.05))[None].to(obj.dtype)
    gy, gx = torch.gradient(obj, dim=-2)[0], torch.gradient(obj, dim=-1)[0]
    delta = (0.3, -0.2)
    chi = probe * (delta[0] * gy + delta[1] * gx)
    est = solve_shifts(position_sums(obj, probe, chi).numpy()[None], 0.0)[0]
    assert est == pytest.approx(delta, abs=1e-9)


def test_step_limit_and_mean_removal() -> None:
    """``end_epoch`` removes the common shift and caps each move at ``max_step_px`` (the
    global map refined from the start, so that only these two rules act)."""
    pos = np.array([[10.0, 10.0], [10.0, 30.0], [30.0, 10.0], [30.0, 30.0], [20.0, 20.0]])
    cfg = PositionConfig(start=0, max_step_px=0.5, momentum=0.0, scan_map=True, scan_map_start=0)
    pc = PositionCorrection(cfg)
    pc.prepare(CorrectionContext.of(pos, torch.ones(1, 8, 8, dtype=torch.complex64)))
    pc.begin_epoch(0)
    pc.sums[:] = [1.0, 1.0, 0.0, 0.0, 0.0]
    pc.sums[4, 3] = 5.0  # position 4 wants +5 px in y; the others nothing
    pc.end_epoch(0)
    moved = pc.positions - pos
    assert np.abs(moved.mean(0)).max() < 1e-12  # a global shift is invisible: removed
    assert np.sqrt((moved**2).sum(1)).max() <= 0.5 + 0.3 + 1e-12  # the cap, then re-centring
    assert moved[4, 0] > 0.3
    assert limit_steps(np.array([[3.0, 4.0]]), 1.0) == pytest.approx(np.array([[0.6, 0.8]]))


def test_scan_map_fit_and_decomposition() -> None:
    """``fit_scan_map`` recovers a map it is given exactly; ``decompose`` inverts
    ``scan_matrix``; ``map_part`` removes exactly that (catches a transposed matrix)."""
    rng = np.random.default_rng(0)
    nominal = rng.uniform(0, 100, (40, 2))
    a = scan_matrix(0.03, 2.0, 0.05)
    truth = ScanMap(nominal.mean(0), np.array([1.0, -2.0]), a, np.array([0.5, 1.5]))
    fit = fit_scan_map(nominal, truth.apply(nominal))
    assert np.allclose(fit.matrix, a) and np.allclose(fit.drift, [0.5, 1.5])
    theta, sy, sx, shear = decompose(a)
    assert (math.degrees(theta), sy, sx, shear) == pytest.approx((2.0, 1.03, 1.03, 0.05))
    steps = truth.apply(nominal) - nominal
    assert np.abs(steps - map_part(nominal, steps, np.ones(40, bool))).max() < 1e-9
    assert ScanMap.from_array(fit.as_array()).apply(nominal) == pytest.approx(fit.apply(nominal))


def test_position_rms_ignores_a_global_offset() -> None:
    t = np.arange(20.0).reshape(10, 2)
    assert position_rms_px(t + [3.0, -1.0], t) == pytest.approx(0.0, abs=1e-12)
    assert position_rms_px(t + np.array([[1.0, 0.0]] * 5 + [[-1.0, 0.0]] * 5), t) == pytest.approx(
        1.0
    )


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("max_step_px", 0.0, "max_step_px"),
        ("max_step_px", math.inf, "max_step_px"),
        ("start", -1, "start"),
        ("start", 2.5, "start"),
        ("momentum", 1.0, "momentum"),
        ("affine_weight", 2.0, "affine_weight"),
    ],
)
def test_bad_settings_are_one_config_error(field: str, value: float, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        PositionConfig(**{field: value})


def test_one_position_is_refused() -> None:
    pc = PositionCorrection()
    ctx = CorrectionContext.of(np.zeros((1, 2)), torch.ones(1, 8, 8, dtype=torch.complex64))
    with pytest.raises(ConfigError, match="at least 2 positions"):
        pc.prepare(ctx)


def test_state_dict_round_trip() -> None:
    """A resumed correction continues with the same positions, velocity and map."""
    pos = np.array([[0.0, 0.0], [0.0, 9.0], [9.0, 0.0], [9.0, 9.0]])
    a = PositionCorrection(PositionConfig(start=0))
    a.prepare(CorrectionContext.of(pos, torch.ones(1, 4, 4, dtype=torch.complex64)))
    a.begin_epoch(0)
    a.sums[:] = [[1, 1, 0, 0.2, -0.1], [1, 1, 0, 0, 0], [1, 1, 0, 0, 0.3], [1, 1, 0, 0, 0]]
    a.end_epoch(0)
    b = PositionCorrection(PositionConfig(start=0))
    b.prepare(CorrectionContext.of(pos, torch.ones(1, 4, 4, dtype=torch.complex64)))
    b.load_state_dict(a.state_dict())
    for c in (a, b):
        c.begin_epoch(1)
        c.sums[:] = [[1, 1, 0, 0.1, 0], [1, 1, 0, 0, 0.2], [1, 1, 0, 0, 0], [1, 1, 0, -0.1, 0]]
        c.end_epoch(1)
    assert np.array_equal(a.positions, b.positions)
    assert set(a.results()) >= {"positions_px", "position_corrections_px", "scan_map"}


def _case(seed: int = 1) -> tuple:
    """A noiseless 9 x 9 raster (64 px windows, 8 px steps) and its true positions."""
    raster = {"name": "raster", "n_y": 9, "n_x": 9, "step_px": 8, "jitter_px": 2.0}
    sim = simulate_dataset(
        phantom=PARTICLES,
        scan={**raster, "integer_positions": True},
        window_px=64,
        noise="none",
        object_margin_px=6,
        seed=seed,
    )
    return sim, sim.geometry.positions_px


def _errors(true_px: np.ndarray, rms_px: float, seed: int) -> np.ndarray:
    """Return errors of ``rms_px`` (2-D RMS) in random directions with no global-map part
    relative to the recorded positions (that part needs ``scan_map``; module of the test)."""
    rng = np.random.default_rng(seed)
    ang = rng.uniform(0, 2 * np.pi, len(true_px))
    e = np.stack([np.sin(ang), np.cos(ang)], 1)
    for _ in range(20):
        e *= rms_px / np.sqrt((e**2).sum(1).mean())
        e -= map_part(true_px + e, e, np.ones(len(true_px), bool))
    return e


@pytest.mark.slow
def test_positions_off_by_3px_come_back() -> None:
    """Noiseless case, ePIE from a disk probe and a vacuum object, recorded positions off by
    3 px RMS: after 60 sweeps the positions are within 0.2 px RMS of the truth, where the
    uncorrected ones stay at 3 px (catches a wrong sign, gain, momentum or constraint of the
    position update, or the sums taken after the object update)."""
    sim, true_px = _case()
    rec = true_px + _errors(true_px, 3.0, 5)
    amps = drv.amplitudes(sim.patterns[0]).float()
    shape = tuple(
        max(a, int(np.ceil(b)) + 66)
        for a, b in zip(sim.geometry.object_shape, rec.max(0), strict=True)
    )
    obj = torch.ones(shape, dtype=torch.complex64)
    power = float(sim.patterns[0].sum((1, 2)).mean())
    probe = drv.disk(64, 64 / 6, power).to(torch.complex64)
    pc = PositionCorrection(PositionConfig())
    drv.run(obj, probe, rec, amps, 60, {"positions": pc})
    assert position_rms_px(rec, true_px) == pytest.approx(3.0, rel=0.05)
    assert position_rms_px(pc.positions, true_px) < 0.2


class _Amplitudes:
    """Pattern data holding amplitudes ``[T, M, N]`` in one chunk (``amplitude_chunks``)."""

    def __init__(self, amps: torch.Tensor) -> None:
        self.amps = amps

    def amplitude_chunks(self):
        yield 0, self.amps, None


def _smooth_phase_object(size: int, seed: int) -> torch.Tensor:
    """A phase object ``[size, size]`` complex128 with smooth random phase (1.5 rad RMS)."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))
    k2 = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None] ** 2
    ph = np.fft.ifft2(f * np.exp(-k2 / (2 * 0.08**2))).real
    return torch.from_numpy(np.exp(1j * 1.5 * ph / ph.std()))


@pytest.mark.parametrize(("isotropic", "scale", "shear"), [(True, 0.03, 0.0), (False, 0.0, 0.02)])
def test_coarse_map_step_recovers_a_scale_and_rotation(
    isotropic: bool, scale: float, shear: float
) -> None:
    """A scan recorded through a 3 % scale and a 2 degree rotation (or the rotation and a 2 %
    shear, solved without the common scale as ``PositionCorrection`` does), the object formed
    as the deformed copy those positions give (what a reconstruction converges to; no per-position
    shift sees it): a few coarse map steps (windows' deformation, object warp, positions mapped)
    bring the positions within 0.1 px RMS of the truth and the fitted map within 0.5 % and
    0.1 degree of the recorded one (catches a sign or transpose of ``E``, a wrong centre of the
    warp, or positions mapped by ``L`` instead of its inverse)."""
    m = 32
    obj = _smooth_phase_object(160, 0)
    yy, xx = np.mgrid[:m, :m] - (m - 1) / 2
    probe = np.exp(-(yy**2 + xx**2) / (2 * 6.0**2) + 0.01j * (yy**2 + xx**2))
    probe_t = torch.from_numpy(probe)[None]
    g = np.arange(9) * 10.0 + 30
    true = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    corners = torch.from_numpy(true.astype(np.int64))
    waves = coarse.far_field(coarse.windows(obj, corners, (m, m)), probe_t)
    data = _Amplitudes(waves.abs().square().sum(1).sqrt())
    a = scan_matrix(scale, 2.0, shear)
    centre = (true + (m - 1) / 2).mean(0)
    rec = true + (true + (m - 1) / 2 - centre) @ (a - np.eye(2)).T
    o = coarse.warp_object(obj, np.linalg.inv(a), centre)  # O'(x) = O(c + A^-1 (x - c))
    pos = rec.copy()
    for _ in range(6):
        g, h = coarse.deformation_system(o, probe_t, pos, data)
        lm = coarse.solve_deformation(g, h, 1e-3, isotropic=isotropic)
        pos, c = coarse.map_positions(pos, lm, (m, m))
        o = coarse.warp_object(o, lm, c)
    assert position_rms_px(rec, true) > 0.9
    assert position_rms_px(pos, true) < 0.1
    want = decompose(fit_scan_map(rec, true).matrix)
    got = decompose(fit_scan_map(rec, pos).matrix)
    assert math.degrees(got[0]) == pytest.approx(math.degrees(want[0]), abs=0.1)
    assert got[1:] == pytest.approx(want[1:], abs=5e-3)


@pytest.mark.slow
def test_a_rotated_scan_comes_back_through_the_frame(tmp_path) -> None:
    """ePIE through the frame on a noiseless 10 x 10 scan recorded through a 3 degree rotation,
    ``scan_map`` on: the coarse map step brings the fitted rotation within 1 degree of the
    truth and the positions below 1 px RMS (without it, measured: -0.15 degree, 1.65 px RMS;
    catches the coarse step not reached from the frame, the object not warped in place, or the
    positions mapped the wrong way)."""
    import h5py

    from ptyframe.data.dataset import PtychoDataset
    from ptyframe.runner import reconstruct

    sim = simulate_dataset(
        phantom={"name": "natural"},
        probe={"name": "focused"},
        scan={"name": "step_raster", "n": 10, "step_px": 8.0, "jitter_px": 1.0},
        window_px=64,
        noise="none",
        seed=0,
        nuisances={"scan_rotation_deg": 3.0},
    )
    ds = PtychoDataset(sim.geometry, patterns=sim.patterns, truth=sim.truth)
    rec = np.array(sim.geometry.positions_px)
    true = np.asarray(sim.truth.extras["positions_px"])
    out = tmp_path / "run"
    reconstruct(
        ds, "epie", out_dir=out, epochs=30, refine={"positions": True}, positions={"scan_map": True}
    )
    with h5py.File(out / "recon.h5", "r") as f:
        pos = np.asarray(f["positions_px"])
    truth = fit_scan_map(rec, true).parameters()["rotation_deg"]
    assert truth == pytest.approx(-3.0, abs=1e-6)
    assert fit_scan_map(rec, pos).parameters()["rotation_deg"] == pytest.approx(truth, abs=1.0)
    assert position_rms_px(pos, true) < 1.0 < position_rms_px(rec, true)
