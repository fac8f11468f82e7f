"""Conventions of ptyframe.physics.fft: normalisation, centring, sign, Fourier shift."""

from __future__ import annotations

import numpy as np
import torch

from ptyframe.physics import fft


def test_far_field_is_unitary_parseval():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((3, 32, 32)) + 1j * rng.standard_normal((3, 32, 32)))
    y = fft.far_field(x)
    assert torch.allclose(x.abs().square().sum(), y.abs().square().sum(), rtol=1e-12)
    assert torch.allclose(fft.far_field_adjoint(y), x, atol=1e-12)


def test_adjoint_inner_product():
    rng = np.random.default_rng(1)
    a = torch.from_numpy(rng.standard_normal((16, 16)) + 1j * rng.standard_normal((16, 16)))
    b = torch.from_numpy(rng.standard_normal((16, 16)) + 1j * rng.standard_normal((16, 16)))
    lhs = torch.vdot(fft.far_field(a).flatten(), b.flatten())
    rhs = torch.vdot(a.flatten(), fft.far_field_adjoint(b).flatten())
    assert abs(complex(lhs - rhs)) < 1e-10


def test_plane_wave_lands_at_known_pixel_positive_sign():
    # psi = exp(+2 pi i (ky y + kx x) / N) diffracts to FFT index (ky, kx): the forward
    # transform is exp(-2 pi i k.r / N) (numpy / torch sign), as documented in fft.py
    n = 32
    yy, xx = np.mgrid[:n, :n]
    psi = torch.from_numpy(np.exp(2j * np.pi * (3 * yy + 5 * xx) / n))
    inten = fft.far_field(psi).abs().square()
    assert tuple(np.unravel_index(int(inten.argmax()), (n, n))) == (3, 5)
    centred = fft.to_centred(inten)
    assert tuple(np.unravel_index(int(centred.argmax()), (n, n))) == (n // 2 + 3, n // 2 + 5)
    assert torch.equal(fft.from_centred(centred), inten)


def test_flat_wave_gives_zero_frequency_at_centre_in_files():
    psi = torch.ones(16, 16, dtype=torch.complex128)
    centred = fft.to_centred(fft.far_field(psi).abs().square())
    assert float(centred[8, 8]) == 16 * 16 and float(centred.sum()) == 16 * 16


def test_fourier_shift_integer_equals_roll_and_subpixel_composes():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.standard_normal((24, 24)) + 1j * rng.standard_normal((24, 24)))
    out = fft.fourier_shift(x, torch.tensor([[2.0, -3.0]], dtype=torch.float64))[0]
    assert torch.allclose(out, torch.roll(x, (2, -3), dims=(0, 1)), atol=1e-10)
    half = fft.fourier_shift(x, torch.tensor([[0.5, 0.25]], dtype=torch.float64))
    twice = fft.fourier_shift(half[0], torch.tensor([[0.5, 0.25]], dtype=torch.float64))[0]
    ref = fft.fourier_shift(x, torch.tensor([[1.0, 0.5]], dtype=torch.float64))[0]
    assert torch.allclose(twice, ref, atol=1e-10)
    # unitary: the norm is kept
    assert torch.allclose(half.abs().square().sum(), x.abs().square().sum())
