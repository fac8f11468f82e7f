"""Orthogonal probe relaxation (``corrections.opr``) and the flux scalars (``corrections.flux``).

Run from ``pie_driver`` (a plain torch ePIE sweep calling the hooks) until the engine frame
carries them; noiseless simulated cases, checked against the truth.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptyframe.engines.corrections.base import CorrectionContext
from ptyframe.engines.corrections.config import FluxConfig, ProbeVariationConfig
from ptyframe.engines.corrections.flux import FluxCorrection, flux_sums
from ptyframe.engines.corrections.opr import ProbeVariation, orthogonalise, smooth_in_time
from ptyframe.errors import ConfigError
from ptyframe.simulation.nuisances import probes_at
from ptyframe.simulation.simulate import simulate_dataset

import pie_driver as drv

PARTICLES = {"name": "particles", "max_phase_rad": 1.0, "radius_max_px": 10.0}
SCAN = {"name": "raster", "n_y": 7, "n_x": 7, "overlap": 0.7, "jitter_px": 1.0}


def _sim(**nuisances):
    return simulate_dataset(
        phantom=PARTICLES, scan=SCAN, window_px=64, noise="none", seed=1, nuisances=nuisances
    )


def _start(sim) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    amps = drv.amplitudes(sim.patterns[0]).float()
    obj = torch.ones(sim.geometry.object_shape, dtype=torch.complex64)
    power = float(sim.patterns[0].sum((1, 2)).mean())
    return obj, drv.disk(64, 64 * 0.2, power).to(torch.complex64), amps


# ------------------------------------------------------------------------------ OPR
def test_orthogonalise_keeps_every_probe() -> None:
    """``w' U' = w U`` to rounding, ``U'`` orthogonal and sorted by power, weight columns of
    mean square 1 (catches a factor lost in the QR/SVD relaxation)."""
    g = torch.Generator().manual_seed(0)
    u = torch.randn(3, 8, 9, dtype=torch.complex128, generator=g)
    w = torch.randn(20, 3, dtype=torch.complex128, generator=g)
    u2, w2 = orthogonalise(u, w, floor=1e-3)
    before = torch.einsum("nk,kmj->nmj", w, u)
    after = torch.einsum("nk,kmj->nmj", w2, u2)
    assert torch.allclose(before, after, atol=1e-10)
    gram = torch.einsum("kmn,lmn->kl", u2.conj(), u2)
    off = gram - torch.diag(torch.diagonal(gram))
    assert float(off.abs().max()) < 1e-9
    power = torch.diagonal(gram).real
    assert bool((power[:-1] >= power[1:]).all())
    assert torch.allclose((w2.abs() ** 2).mean(0), torch.ones(3, dtype=torch.float64))


def test_one_eigen_probe_is_the_shared_probe() -> None:
    """With ``modes = 1`` OPR is the plain engine bit for bit (catches a step that OPR
    scales or distributes differently from the shared probe's)."""
    sim = _sim()
    obj_a, probe_a, amps = _start(sim)
    obj_b, probe_b = obj_a.clone(), probe_a.clone()
    pos = sim.geometry.positions_px
    drv.run(obj_a, probe_a, pos, amps, 3)
    opr = ProbeVariation(ProbeVariationConfig(modes=1, start=0))
    drv.run(obj_b, probe_b, pos, amps, 3, {"opr": opr})
    assert torch.equal(obj_a, obj_b)
    assert torch.allclose(probe_a, probe_b, rtol=0, atol=1e-6 * float(probe_a.abs().max()))


def test_probe_variation_refuses_more_modes_than_patterns() -> None:
    ctx = CorrectionContext.of(np.zeros((4, 2)), torch.ones(1, 8, 8, dtype=torch.complex64))
    with pytest.raises(ConfigError, match="exceeds the 4 patterns"):
        ProbeVariation(ProbeVariationConfig(modes=5)).prepare(ctx)
    with pytest.raises(ConfigError, match="modes"):
        ProbeVariationConfig(modes=-1)


def test_incoherent_modes_stay_shared_and_roll() -> None:
    """Mode 0 per position, modes >= 1 shared; ``on_roll`` moves the eigen-probes."""
    probe = torch.randn(2, 8, 8, dtype=torch.complex128, generator=torch.Generator().manual_seed(1))
    opr = ProbeVariation(ProbeVariationConfig(modes=2, start=0))
    opr.prepare(CorrectionContext.of(np.zeros((5, 2)), probe))
    p3 = opr.probe_for(3, probe)
    assert torch.equal(p3[1], probe[1])
    assert torch.allclose(opr.probes_for(torch.tensor([3]), probe)[0], p3)
    step = torch.zeros_like(probe)
    step[1] = 1.0
    opr.add_probe_step(3, step, probe)
    assert torch.allclose(opr.probe_for(0, probe)[1], probe[1])
    u0 = opr.u.clone()
    opr.on_roll(2, -1)
    assert torch.equal(opr.u, torch.roll(u0, (2, -1), (-2, -1)))


def test_smoothing_keeps_polynomials() -> None:
    t = torch.linspace(0, 1, 30, dtype=torch.float64)
    w = torch.stack([t**2 - 0.3, 2 * t], 1).to(torch.complex128)
    assert torch.allclose(smooth_in_time(w, 3), w, atol=1e-10)


#: OPR's mean per-position miss (1 - correlation with the true probe) must be below this
#: fraction of the shared probe's (a broken OPR gives the shared probe's: a ratio near 1)
MISS_RATIO = 0.3
#: and its worst position's miss below this (the shared probe's worst, at the ends of the
#: drift, is well above it)
MISS_MAX = 0.04


def _per_position_correlation(p_est: torch.Tensor, p_true: torch.Tensor) -> torch.Tensor:
    """``|<P_j, T_j>| / (||P_j|| ||T_j||)`` per position (1: the same probe up to a complex
    factor; blind to the global phase and scale that ptychography cannot fix)."""
    inner = (p_est.conj() * p_true).sum((-2, -1)).abs()
    norms = p_est.abs().square().sum((-2, -1)) * p_true.abs().square().sum((-2, -1))
    return inner / norms.sqrt()


@pytest.mark.slow
def test_drifting_probe_is_recovered_position_by_position() -> None:
    """A probe whose defocus drifts by 100 um along the scan: OPR with 3 eigen-probes fits the
    data better than one shared probe, every position's probe correlates with the truth
    (``probes_at``) better than the shared probe does, and the first variation's weights
    follow the true defocus (catches OPR updates that do not reach the variations, weights
    that do not track the drift, or per-position probes that are not the positions')."""
    sim = _sim(probe_defocus_drift_m=100e-6)
    pos = sim.geometry.positions_px
    extras = sim.truth.extras
    lam = sim.attrs["wavelength_m"]
    p_true = probes_at(
        sim.truth.probe, extras["probe_defocus_m"], extras["probe_shift_px"], 20e-9, lam
    )
    p_true = p_true[:, 0].to(torch.complex64)
    obj, probe, amps = _start(sim)
    shared = drv.run(obj, probe, pos, amps, 120)
    miss_shared = 1 - _per_position_correlation(probe[0].expand_as(p_true), p_true)
    obj, probe, amps = _start(sim)
    opr = ProbeVariation(ProbeVariationConfig(modes=3, start=30, weight_smoothing=3))
    varied = drv.run(obj, probe, pos, amps, 120, {"opr": opr})
    p_opr = torch.stack([opr.probe_for(j, probe)[0] for j in range(len(pos))])
    miss_opr = 1 - _per_position_correlation(p_opr, p_true)
    assert varied[-1] < 0.7 * shared[-1]
    assert float(miss_opr.mean()) < MISS_RATIO * float(miss_shared.mean())
    assert float(miss_opr.max()) < MISS_MAX
    z = extras["probe_defocus_m"] - extras["probe_defocus_m"].mean()
    w = opr.w[:, 1].numpy()
    fit = (z @ (w - w.mean())) / (z @ z) * z
    r2 = 1 - np.sum(np.abs(w - w.mean() - fit) ** 2) / np.sum(np.abs(w - w.mean()) ** 2)
    assert r2 > 0.6


# ------------------------------------------------------------------------------ flux
def test_flux_sums_give_the_least_squares_scale() -> None:
    """For measured = c * model, ``sum aA / sum A^2 = c``; unmeasured pixels are left out."""
    g = torch.Generator().manual_seed(2)
    model = torch.rand(3, 6, 6, generator=g, dtype=torch.float64)
    measured = model * torch.tensor([0.9, 1.0, 1.2], dtype=torch.float64)[:, None, None]
    valid = torch.ones(3, 6, 6, dtype=torch.bool)
    valid[:, 0] = False
    measured[:, 0] = 100.0  # outliers on unmeasured pixels
    s_aa, s_a2 = flux_sums(measured, model, valid)
    assert (s_aa / s_a2).tolist() == pytest.approx([0.9, 1.0, 1.2])


def test_flux_settings() -> None:
    with pytest.raises(ConfigError, match="step"):
        FluxConfig(refine=True, step=0.0)
    with pytest.raises(ConfigError, match="start"):
        FluxConfig(refine=True, start=-2)


def test_fluctuating_flux_is_recovered() -> None:
    """10 % RMS flux fluctuation: after 40 sweeps the refined intensity factors are within
    2 % RMS of the truth (the spread is ~10 %), and the data error is less than half that of
    the run without flux refinement (catches c applied to the wrong side of the modulus
    step, or the statistics of the wrong pattern)."""
    sim = _sim(flux_rms=0.1)
    truth = sim.truth.extras["flux"]
    pos = sim.geometry.positions_px
    obj, probe, amps = _start(sim)
    without = drv.run(obj, probe, pos, amps, 40)
    obj, probe, amps = _start(sim)
    fc = FluxCorrection(FluxConfig(refine=True))
    with_flux = drv.run(obj, probe, pos, amps, 40, {"flux": fc})
    f = fc.results()["flux"]
    assert f.mean() == pytest.approx(1.0, abs=0.05)
    assert float(np.sqrt(np.mean((f - truth) ** 2))) < 0.02 < float(truth.std())
    assert with_flux[-1] < 0.5 * without[-1]


def test_every_correction_is_a_frame_correction() -> None:
    """The three corrections implement the frame's ``Correction`` protocol."""
    from ptyframe.engines.corrections.base import Correction
    from ptyframe.engines.corrections.positions import PositionCorrection

    for c in (
        PositionCorrection(),
        ProbeVariation(ProbeVariationConfig(modes=2)),
        FluxCorrection(FluxConfig(refine=True)),
    ):
        assert isinstance(c, Correction), type(c).__name__
