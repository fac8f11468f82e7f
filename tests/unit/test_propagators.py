"""Pin down the propagators: sign convention, unitarity, inverses, evanescent cut, gradients."""

from __future__ import annotations

import math

import pytest
import torch

import ptyframe
from ptyframe.physics import fft
from ptyframe.physics.propagators import (
    AngularSpectrum,
    Fraunhofer,
    Fresnel,
    angular_spectrum_transfer,
    fresnel_transfer,
    make_propagator,
)

DX = 1e-7  # 100 nm pixels
LAM = 1e-10  # 0.1 nm


def gaussian(n: int, sigma_px: float, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    r2 = (y.double() ** 2 + x.double() ** 2) / sigma_px**2
    return torch.exp(-0.5 * r2).to(dtype)


def random_wave(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n, generator=g, dtype=torch.complex128)


@pytest.mark.parametrize("prop", [Fresnel(), AngularSpectrum()])
def test_near_field_is_unitary_and_inverted_by_the_opposite_distance(prop) -> None:
    n = 64
    wave = gaussian(n, 3.0) * torch.exp(1j * torch.linspace(0, 2, n**2).reshape(n, n))
    d = 1e-3
    out = prop(wave, d, DX, LAM)
    # band-limited input: no evanescent loss, so energy is conserved (Parseval)
    assert torch.allclose(out.abs().square().sum(), wave.abs().square().sum(), rtol=1e-10)
    back = prop(out, -d, DX, LAM)
    assert torch.allclose(back, wave, atol=1e-10)
    # propagation changes the field (the test would pass trivially otherwise)
    assert (out - wave).abs().max() > 0.1


def test_point_source_diverges_with_positive_quadratic_phase() -> None:
    """Positive convention: a point source propagated by d > 0 has phase +pi r^2/(lambda d)."""
    n = 256
    src = gaussian(n, 0.7)
    d = 2.0 * n * DX**2 / LAM / 4  # fringes stay sampled: lambda d / (n dx^2) = 0.5
    out = Fresnel()(src, d, DX, LAM)
    c = n // 2
    for r in (4, 8, 12):
        expected = math.pi * (r * DX) ** 2 / (LAM * d)
        measured = torch.angle(out[c, c + r] / out[c, c])
        wrapped = math.remainder(float(measured) - expected, 2 * math.pi)
        assert abs(wrapped) < 0.05, (r, float(measured), expected)


def test_lens_focuses_downstream_at_its_focal_length() -> None:
    """A lens exp(-i pi r^2 / (lambda f)) (positive convention) focuses at d = +f."""
    n = 128
    y, x = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    r2 = (y.double() ** 2 + x.double() ** 2) * DX**2
    f = 0.5 * (n * DX) ** 2 / LAM / n  # numerical aperture inside the sampled band
    aperture = (r2 < (0.3 * n * DX) ** 2).double()
    lens = aperture * torch.exp(-1j * math.pi * r2 / (LAM * f))
    peak_down = Fresnel()(lens, f, DX, LAM).abs().max()
    peak_up = Fresnel()(lens, -f, DX, LAM).abs().max()
    assert peak_down > 5 * peak_up
    focus = AngularSpectrum()(lens, f, DX, LAM).abs()
    assert int(focus.argmax()) == (n // 2) * n + n // 2


def test_angular_spectrum_matches_fresnel_at_small_angles_and_cuts_evanescent_waves() -> None:
    n = 64
    wave = gaussian(n, 4.0)
    d = 5e-4
    a = AngularSpectrum()(wave, d, DX, LAM)
    b = Fresnel()(wave, d, DX, LAM)
    assert (a - b).abs().max() < 1e-4 * wave.abs().max()
    # a pixel of 0.05 nm at 0.1 nm wavelength samples evanescent frequencies
    k = angular_spectrum_transfer((n, n), 0.05e-9, LAM, d)
    nu2 = torch.fft.fftfreq(n, 0.05e-9)[:, None] ** 2 + torch.fft.fftfreq(n, 0.05e-9)[None] ** 2
    evanescent = LAM**2 * nu2 >= 1
    assert evanescent.any() and (~evanescent).any()
    assert torch.all(k[evanescent] == 0)
    assert torch.allclose(k[~evanescent].abs(), torch.ones(1, dtype=torch.float64))


def test_kernels_have_the_documented_form() -> None:
    n = 16
    nu = torch.fft.fftfreq(n, DX, dtype=torch.float64)
    nu2 = nu[:, None] ** 2 + nu[None] ** 2
    d = 1e-3
    h1 = fresnel_transfer((n, n), DX, LAM, d)
    assert torch.allclose(h1, torch.exp(-1j * math.pi * LAM * d * nu2))
    h2 = angular_spectrum_transfer((n, n), DX, LAM, d)
    k = 2 * math.pi / LAM
    expected = torch.exp(1j * k * d * (torch.sqrt(1 - LAM**2 * nu2) - 1))
    assert torch.allclose(h2, expected, atol=1e-9)
    # one kernel per distance for a batch of distances
    assert fresnel_transfer((n, n), DX, LAM, torch.tensor([d, 2 * d])).shape == (2, n, n)


def test_fraunhofer_is_the_unitary_fft_of_the_conventions_module() -> None:
    w = random_wave(16)
    assert torch.equal(Fraunhofer()(w), fft.far_field(w))
    assert torch.allclose(Fraunhofer()(w).abs().square().sum(), w.abs().square().sum())


@pytest.mark.parametrize("prop", [Fresnel(), AngularSpectrum()])
def test_gradient_with_respect_to_distance_matches_finite_differences(prop) -> None:
    n = 8
    w = random_wave(n, 1)
    scale = 1e-4  # optimise the distance in units of 0.1 mm, as the engine does

    def f(u: torch.Tensor) -> torch.Tensor:
        return prop(w, u * scale, 2e-6, LAM).abs().square()

    u = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (u,), eps=1e-6, atol=1e-6)


def test_registry_builds_every_propagator() -> None:
    reg = ptyframe.registry()
    for name, cls in (
        ("fraunhofer", Fraunhofer),
        ("fresnel", Fresnel),
        ("angular_spectrum", AngularSpectrum),
    ):
        assert isinstance(reg.build("propagator", name), cls)
        assert isinstance(make_propagator(name), cls)
