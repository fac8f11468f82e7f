"""The exit-wave models of the fast engines: the multislice chain against autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptyframe.errors import ConfigError
from ptyframe.physics.detector import NearFieldPropagator
from ptyframe.physics.exitwave import (
    MultisliceExitWave,
    SingleSliceExitWave,
    build_exit_wave,
    e3pie_rule,
    gradient_rule,
)
from ptyframe.physics.projection import detector_delta

LAM = 1.239841984e-6 / 12660.0
DX = 50e-9
GAP = 4e-6


def rand(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.complex128)


def numpy_multislice(windows: np.ndarray, probes: np.ndarray, gaps: list[float]) -> np.ndarray:
    """Plain numpy: multiply, Fresnel-propagate over each gap, multiply, ... ``[B, K, M, N]``."""
    m, n = windows.shape[-2:]
    nu2 = np.fft.fftfreq(m, DX)[:, None] ** 2 + np.fft.fftfreq(n, DX)[None, :] ** 2
    u = probes
    for s in range(windows.shape[0]):
        e = windows[s][:, None] * u
        if s == windows.shape[0] - 1:
            return e
        u = np.fft.ifft2(np.fft.fft2(e) * np.exp(-1j * np.pi * LAM * gaps[s] * nu2))
    raise AssertionError


def test_multislice_forward_matches_numpy() -> None:
    """Three slices with unequal gaps against the numpy reference: catches a missing
    propagation, a wrong gap order or a sign of the chirp."""
    gaps = [GAP, 2.5 * GAP]
    model = MultisliceExitWave(3, (24, 20), DX, LAM, gaps, dtype=torch.complex128)
    w, p = rand((3, 4, 24, 20), 0), rand((4, 2, 24, 20), 1)
    psi, cache = model.forward(w, p)
    ref = numpy_multislice(w.numpy(), p.numpy(), gaps)
    assert np.allclose(psi.numpy(), ref, atol=1e-12)
    assert torch.equal(cache.incident[0], p)


@pytest.mark.parametrize("n_slices", [1, 2, 3])
def test_gradient_chain_equals_autograd(n_slices: int) -> None:
    """With ``gradient_rule`` the chain returns -1/2 of the autograd gradient of
    ``||psi - target||^2`` for every slice's windows and for the probes (several modes):
    catches a wrong back-propagation direction, a missing conjugate, or an incident wave taken
    from the wrong slice."""
    b, k, m = 3, 2, 16
    model = build_exit_wave(n_slices, (m, m), DX, LAM, GAP, dtype=torch.complex128)
    w = rand((n_slices, b, m, m), 2).requires_grad_(True)
    p = rand((b, k, m, m), 3).requires_grad_(True)
    psi, cache = model.forward(w, p)
    target = psi.detach() + rand(psi.shape, 4)
    loss = (psi - target).abs().square().sum()
    gw, gp = torch.autograd.grad(loss, (w, p))
    chi = (target - psi).detach()
    cache.windows, cache.incident = cache.windows.detach(), cache.incident.detach()
    out = model.backward(chi, cache, gradient_rule)
    assert torch.allclose(out.window_steps, -0.5 * gw, atol=1e-10)
    assert torch.allclose(out.probe_step, -0.5 * gp, atol=1e-10)
    assert torch.equal(out.chi[-1], chi)


def test_e3pie_steps_are_the_gradient_directions_scaled() -> None:
    """e3PIE's normalised steps are positive multiples (per position and slice) of the
    gradient chain's: the direction is the gradient's up to the rule's normalisation."""
    b, k, m = 4, 1, 16
    model = MultisliceExitWave(2, (m, m), DX, LAM, GAP, dtype=torch.complex128)
    w = 1 + 0.3 * rand((2, b, m, m), 5)
    p = rand((b, k, m, m), 6)
    psi, cache = model.forward(w, p)
    chi = rand(psi.shape, 7)
    grad = model.backward(chi, cache, gradient_rule)
    pie = model.backward(chi, cache, e3pie_rule(alpha=0.7, beta=0.4))
    for a, g in ((pie.window_steps, grad.window_steps), (pie.probe_step, grad.probe_step)):
        a, g = a.reshape(*a.shape[:2], -1), g.reshape(*g.shape[:2], -1)
        ratio = (a.conj() * g).sum(-1) / (g.conj() * g).sum(-1)  # least-squares scale
        assert torch.all(ratio.real > 0) and float(ratio.imag.abs().max()) < 1e-10
        assert torch.allclose(a, ratio.real[..., None] * g, atol=1e-10)


def test_e3pie_single_slice_is_epie() -> None:
    """One slice: the e3PIE rule is ePIE's object and probe update (Maiden & Rodenburg 2009)."""
    w, p = 1 + 0.2 * rand((1, 2, 8, 8), 8), rand((2, 1, 8, 8), 9)
    psi, cache = SingleSliceExitWave().forward(w, p)
    chi = rand(psi.shape, 10)
    out = SingleSliceExitWave().backward(chi, cache, e3pie_rule(1.0, 1.0))
    pmax = p.abs().square().amax(dim=(-2, -1))[:, 0]
    omax = w[0].abs().square().amax(dim=(-2, -1))
    assert torch.allclose(out.window_steps[0], p[:, 0].conj() * chi[:, 0] / pmax[:, None, None])
    assert torch.allclose(out.probe_step[:, 0], w[0].conj() * chi[:, 0] / omax[:, None, None])


def test_whole_visit_gives_the_amplitude_loss_gradient() -> None:
    """Exit waves through two slices, a near-field detector with a buffer zone, the modulus
    step and ``adjoint``, then the chain: -1/2 the autograd gradient of
    ``sum (|Psi| - a)^2`` (the fast engines' visit, end to end)."""
    b, k, m, buf = 2, 2, 12, 3
    big = m + 2 * buf
    model = MultisliceExitWave(2, (big, big), DX, LAM, GAP, dtype=torch.complex128)
    prop = NearFieldPropagator((m, m), DX, LAM, 3e-4, buf, dtype=torch.complex128)
    w = (1 + 0.3 * rand((2, b, big, big), 11)).requires_grad_(True)
    p = rand((b, k, big, big), 12).requires_grad_(True)
    amps = rand((b, m, m), 13).abs()
    psi, cache = model.forward(w, p)
    wave = prop.forward(psi)
    model_amp = wave.abs().square().sum(1).sqrt()
    loss = (model_amp - amps).square().sum()
    gw, gp = torch.autograd.grad(loss, (w, p))
    delta, _ = detector_delta(wave.detach(), amps)
    chi = prop.adjoint(delta)
    cache.windows, cache.incident = cache.windows.detach(), cache.incident.detach()
    out = model.backward(chi, cache, gradient_rule)
    assert torch.allclose(out.window_steps, -0.5 * gw, atol=1e-9)
    assert torch.allclose(out.probe_step, -0.5 * gp, atol=1e-9)


def test_bad_slices_are_refused() -> None:
    """Wrong gap count, no gap for several slices, windows of the wrong slice count."""
    with pytest.raises(ConfigError, match="need 2 gaps"):
        MultisliceExitWave(3, (8, 8), DX, LAM, [GAP])
    with pytest.raises(ConfigError, match="slice_spacing_m"):
        build_exit_wave(2, (8, 8), DX, LAM, None)
    model = MultisliceExitWave(2, (8, 8), DX, LAM, GAP)
    with pytest.raises(ValueError, match=r"\[S=2"):
        model.forward(torch.ones(3, 1, 8, 8, dtype=torch.complex64), torch.ones(1, 8, 8))
