"""Fix the Fourier conventions of ptyframe in one place.

Every other module propagates, shifts and centres through these functions; tests in
``tests/unit/test_fft.py`` pin them down.

Normalisation
    Unitary transforms (``norm="ortho"``): ``far_field(psi) = fft2(psi) / sqrt(H W)``. Parseval
    holds, ``sum |psi|^2 == sum |far_field(psi)|^2``, so the photons in a diffraction pattern
    equal the photons in the exit wave, and the probe's power ``sum |P|^2`` is the photon count
    per pattern of an empty (vacuum) object.

Sign
    Positive phase convention: a plane wave evolves as ``exp(+i k z)``; the refractive index is
    ``n = 1 - delta + i beta``; a slice of thickness ``dz`` transmits
    ``exp(i k (n - 1) dz) = exp(-i k delta dz) exp(-k beta dz)``, so a phase object has
    *negative* phase. The forward far-field transform has kernel ``exp(-2 pi i k.x / N)``
    (``torch.fft.fft2``); the Adorym supplement (section C) notes this pairing of sign
    conventions with the fft/ifft pair.

Centring
    Arrays in *FFT order* have zero frequency at index ``[0, 0]``; that is how engines work
    internally. Files and images hold *centred* arrays, zero frequency at ``[H // 2, W // 2]``:
    ``centred = fftshift(fft_order)``. Measured patterns are converted once, on load, by
    ``from_centred``.

Real space
    A window of shape ``[M, M]`` has its pixel ``[0, 0]`` at the probe position (top-left
    corner, ``(y, x)`` in object pixels); the probe is centred at ``[M // 2, M // 2]``.

Shifts
    ``fourier_shift(x, s)`` returns ``x(r - s)``: content moves by ``+s`` pixels (``s`` may be
    fractional), computed by multiplying the spectrum with ``exp(-2 pi i k.s)`` (circular).
"""

from __future__ import annotations

import math

import torch

DIMS = (-2, -1)


def far_field(psi: torch.Tensor) -> torch.Tensor:
    """Propagate exit waves ``[..., H, W]`` to the detector (unitary FFT, FFT order)."""
    return torch.fft.fft2(psi, norm="ortho")


def far_field_adjoint(wave: torch.Tensor) -> torch.Tensor:
    """Back-propagate detector waves ``[..., H, W]`` (FFT order); the inverse of ``far_field``."""
    return torch.fft.ifft2(wave, norm="ortho")


def to_centred(x: torch.Tensor) -> torch.Tensor:
    """Move zero frequency from ``[0, 0]`` to ``[H // 2, W // 2]`` (``fftshift``)."""
    return torch.fft.fftshift(x, dim=DIMS)


def from_centred(x: torch.Tensor) -> torch.Tensor:
    """Move zero frequency from ``[H // 2, W // 2]`` to ``[0, 0]`` (``ifftshift``)."""
    return torch.fft.ifftshift(x, dim=DIMS)


def frequencies(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Return the FFT-order frequencies of an axis of length ``n`` in cycles per pixel."""
    return torch.fft.fftfreq(n, device=device, dtype=torch.float64)


def shift_ramp_factors(
    shifts_px: torch.Tensor, shape: tuple[int, int], dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the separable factors ``(exp(-2 pi i ky sy) [B, H], exp(-2 pi i kx sx) [B, W])``.

    Their outer product is ``shift_ramp``; keeping them apart costs ``H + W`` values per shift.
    """
    h, w = shape
    dev = shifts_px.device
    s = shifts_px.to(torch.float64)
    ry = torch.polar(
        torch.ones(s.shape[0], h, dtype=torch.float64, device=dev),
        -2.0 * math.pi * s[:, 0, None] * frequencies(h, dev)[None, :],
    ).to(dtype)
    rx = torch.polar(
        torch.ones(s.shape[0], w, dtype=torch.float64, device=dev),
        -2.0 * math.pi * s[:, 1, None] * frequencies(w, dev)[None, :],
    ).to(dtype)
    return ry, rx


def shift_ramp(shifts_px: torch.Tensor, shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """Return ``exp(-2 pi i (ky sy + kx sx))`` for shifts ``[B, 2]`` (y, x) -> ``[B, H, W]``.

    Multiplying a spectrum (FFT order) by this ramp moves the content by ``+s`` pixels.
    """
    ry, rx = shift_ramp_factors(shifts_px, shape, dtype)
    return ry[:, :, None] * rx[:, None, :]


def fourier_shift(x: torch.Tensor, shifts_px: torch.Tensor) -> torch.Tensor:
    """Return ``x(r - s)`` for ``x`` ``[..., H, W]`` and shifts ``[B, 2]`` -> ``[B, ..., H, W]``.

    Sub-pixel shifts use the Fourier shift theorem; the result is circular in the window.
    """
    ramp = shift_ramp(
        shifts_px, (x.shape[-2], x.shape[-1]), x.dtype if x.is_complex() else torch.complex64
    )
    spec = torch.fft.fft2(x)
    extra = spec.dim() - 2
    ramp = ramp.reshape(ramp.shape[0], *([1] * extra), *ramp.shape[-2:])
    return torch.fft.ifft2(spec.unsqueeze(0) * ramp)
