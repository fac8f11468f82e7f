"""The fast engines' detector propagators: adjointness, Parseval, order, numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ptyframe.errors import ConfigError
from ptyframe.physics import fft
from ptyframe.physics.detector import (
    FarFieldPropagator,
    NearFieldPropagator,
    PropagatorSpec,
    build_detector_propagator,
    detector_roll_ramp,
    fringe_reach_px,
)

LAM = 1.239841984e-6 / 12660.0
DX = 178.7e-9
D = 3.638e-3


def waves(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype)


def inner(a: torch.Tensor, b: torch.Tensor) -> complex:
    return complex((a.conj() * b).sum())


def fresnel_numpy(wave: np.ndarray, d: float, dx: float, lam: float) -> np.ndarray:
    """Plain numpy: ``ifft2(fft2(wave) exp(-i pi lambda d |nu|^2))``."""
    h, w = wave.shape[-2:]
    nu2 = np.fft.fftfreq(h, dx)[:, None] ** 2 + np.fft.fftfreq(w, dx)[None, :] ** 2
    return np.fft.ifft2(np.fft.fft2(wave) * np.exp(-1j * np.pi * lam * d * nu2))


@pytest.mark.parametrize("buffer_px", [0, 5])
@pytest.mark.parametrize("shape", [(24, 24), (21, 26)])
def test_near_field_adjoint_is_the_adjoint(buffer_px: int, shape: tuple[int, int]) -> None:
    """<forward x, y> = <x, adjoint y> for random x, y: catches a wrong conjugate kernel, a
    crop and a pad that do not match, or a roll in one direction and not back."""
    prop = NearFieldPropagator(shape, DX, LAM, D, buffer_px, dtype=torch.complex128)
    x = waves((3, 2, *prop.exit_shape), 0)
    y = waves((3, 2, *prop.detector_shape), 1)
    lhs, rhs = inner(prop.forward(x), y), inner(x, prop.adjoint(y))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs), (lhs, rhs)


def test_near_field_without_buffer_keeps_the_power_and_inverts() -> None:
    """Parseval with b = 0 (the transfer function has modulus 1) and adjoint = inverse:
    catches a lost normalisation or a kernel that is not a pure phase."""
    prop = NearFieldPropagator((32, 32), DX, LAM, D, 0, dtype=torch.complex128)
    x = waves((2, 1, 32, 32), 2)
    y = prop.forward(x)
    assert torch.allclose(y.norm(), x.norm(), rtol=1e-12)
    assert torch.allclose(prop.adjoint(y), x, atol=1e-12)


def test_near_field_with_buffer_contracts_and_is_a_partial_isometry() -> None:
    """With b > 0 the forward map crops: ||forward x|| <= ||x||, and forward(adjoint y) = y
    (the adjoint pads and back-propagates without loss)."""
    prop = NearFieldPropagator((20, 20), DX, LAM, D, 6, dtype=torch.complex128)
    x = waves((2, 2, 32, 32), 3)
    assert float(prop.forward(x).norm()) < float(x.norm())
    y = waves((2, 2, 20, 20), 4)
    assert torch.allclose(prop.forward(prop.adjoint(y)), y, atol=1e-12)


@pytest.mark.parametrize("buffer_px", [0, 7])
def test_near_field_matches_numpy_in_detector_order(buffer_px: int) -> None:
    """Against plain numpy on the big window, cropped, then ``ifftshift`` (the order of
    ``Measurements``): catches a sign of the chirp, a wrong frequency grid or crop, and a
    detector order that differs from the measured amplitudes'."""
    m, b = 30, buffer_px
    prop = NearFieldPropagator((m, m), DX, LAM, D, b, dtype=torch.complex128)
    x = waves((1, 1, m + 2 * b, m + 2 * b), 5)
    ref = fresnel_numpy(x.numpy(), D, DX, LAM)[..., b : b + m, b : b + m]
    ref = np.fft.ifftshift(ref, axes=(-2, -1))
    assert np.allclose(prop.forward(x).numpy(), ref, atol=1e-12)


def test_roll_ramp_is_from_centred() -> None:
    """The folded phase ramp equals ``fft.from_centred`` for even and odd sizes."""
    for shape in ((8, 8), (7, 10)):
        x = waves(shape, 6)
        rolled = torch.fft.ifft2(torch.fft.fft2(x) * detector_roll_ramp(shape, None))
        assert torch.allclose(rolled, fft.from_centred(x), atol=1e-12)


def test_far_field_is_the_unitary_fft() -> None:
    """Far field: Parseval and the adjoint inverse, detector in FFT order."""
    prop = FarFieldPropagator((16, 16))
    x = waves((2, 3, 16, 16), 7)
    y = prop.forward(x)
    assert torch.allclose(y.norm(), x.norm(), rtol=1e-12)
    assert torch.allclose(y, torch.fft.fft2(x, norm="ortho"))
    assert torch.allclose(prop.adjoint(y), x, atol=1e-12)


def test_complex64_kernels_follow_the_waves() -> None:
    """The default dtype is complex64; output keeps it (no silent promotion)."""
    prop = NearFieldPropagator((16, 16), DX, LAM, D, 2)
    x = waves((1, 1, 20, 20), 8, torch.complex64)
    assert prop.forward(x).dtype == torch.complex64
    assert prop.adjoint(prop.forward(x)).dtype == torch.complex64


def test_build_refuses_what_cannot_work() -> None:
    """A near field without a distance and a far field with a buffer are refused with the fix."""
    with pytest.raises(ConfigError, match="physics.free_prop_m"):
        build_detector_propagator(PropagatorSpec(near_field=True), (8, 8), DX, LAM)
    with pytest.raises(ConfigError, match="buffer_px=0"):
        build_detector_propagator(PropagatorSpec(buffer_px=4), (8, 8), DX, LAM)
    near = build_detector_propagator(PropagatorSpec(True, D, 3), (8, 8), DX, LAM)
    assert isinstance(near, NearFieldPropagator) and near.exit_shape == (14, 14)


def test_fringe_reach_is_lambda_d_over_two_dx_squared() -> None:
    """The buffer rule of thumb: at Fresnel number F per pixel the reach is 1 / (2 F)."""
    f = DX**2 / (LAM * D)
    assert math.isclose(fringe_reach_px(DX, LAM, D), 1 / (2 * f))
