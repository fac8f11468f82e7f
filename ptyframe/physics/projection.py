"""Project exit waves onto the measured moduli: the Fourier-space constraint of every engine.

For a batch of ``B`` positions with ``K`` mutually incoherent probe modes, exit waves
``psi`` ``[B, K, M, N]``, measured amplitudes ``a = sqrt(I)`` ``[B, M, N]`` (FFT order) and a
mask ``valid`` ``[B, M, N]`` (False where a pixel was not measured)::

    Psi_k   = F psi_k                                    (unitary FFT, ptyframe.physics.fft)
    A       = sqrt(sum_k |Psi_k|^2)                      (model modulus of the mode sum)
    Psi'_k  = a * Psi_k / A          where A > 0         (modulus replacement)
    Psi'_k  = a / sqrt(K)            where A = 0         (Xi(0) = 1, PINE paper eq. 15)
    Psi'_k  = Psi_k                  where not valid     (unmeasured pixels stay free)
    psi'_k  = F^-1 Psi'_k

(Yamada et al., J. Appl. Cryst. 57 (2024), eqs. 14-15 for one mode; Thibault & Menzel,
Nature 494, 68 (2013) for the mode sum). ``Xi(0) = 1`` for ``K`` modes puts ``a / sqrt(K)``
in every mode so the summed intensity equals the measured one. The data error per position
is the PINE reference code's amplitude error ``e_b = sum_valid | A - a |`` (the engines divide
the sum over positions by ``sum a``).

``detector_delta`` works in the detector plane and returns ``Psi' - Psi`` (what the PIE
updates need after one inverse FFT); ``fourier_projection`` does the whole ``psi -> psi'``.
Both are batched and run on the device of their inputs.
"""

from __future__ import annotations

import torch

from ptyframe.physics.fft import far_field, far_field_adjoint


def check_shapes(wave: torch.Tensor, amplitudes: torch.Tensor, valid: torch.Tensor | None) -> None:
    """Raise ``ValueError`` unless ``wave`` is ``[B, K, M, N]`` and ``amplitudes``, ``valid``
    are ``[B, M, N]``."""
    if wave.dim() != 4:
        raise ValueError(f"exit waves must be [B, K, M, N], got {tuple(wave.shape)}")
    want = (wave.shape[0], *wave.shape[-2:])
    if tuple(amplitudes.shape) != want:
        raise ValueError(
            f"amplitudes are {tuple(amplitudes.shape)} but the exit waves {tuple(wave.shape)} "
            f"need {want}"
        )
    if valid is not None and tuple(valid.shape) != want:
        raise ValueError(f"valid mask is {tuple(valid.shape)}; it must be {want}")


def model_modulus(wave: torch.Tensor) -> torch.Tensor:
    """Return ``A = sqrt(sum_k |Psi_k|^2)`` ``[B, M, N]`` for detector waves ``[B, K, M, N]``."""
    if wave.shape[1] == 1:  # not .abs(): torch's complex abs (hypot) is slower on a CPU
        w = wave[:, 0]
        return (w.real.square() + w.imag.square()).sqrt_()
    return (wave.real.square() + wave.imag.square()).sum(1).sqrt_()


def detector_delta(
    wave: torch.Tensor, amplitudes: torch.Tensor, valid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(Psi' - Psi, e)`` for detector waves ``Psi`` ``[B, K, M, N]`` (module docstring).

    ``e`` ``[B]`` float64 is the amplitude error ``sum_valid |A - a|`` of each position.
    """
    check_shapes(wave, amplitudes, valid)
    amp = model_modulus(wave)
    diff = (amp - amplitudes).abs_()
    if valid is not None:
        diff.mul_(valid)
    err = diff.sum(dim=(-2, -1), dtype=torch.float64)
    ratio = amplitudes / amp
    if valid is not None:
        ratio = torch.where(valid, ratio, 1.0)
    if bool(torch.isfinite(ratio).all()):
        return wave * ratio.sub_(1.0).unsqueeze(1), err
    zero = amp == 0  # Xi(0) = 1: Psi' = a / sqrt(K) where Psi = 0 (measured pixels only)
    if valid is not None:
        zero &= valid
    ratio = torch.where(zero, 1.0, ratio).sub_(1.0)
    fill = (amplitudes / wave.shape[1] ** 0.5).to(wave.dtype).unsqueeze(1)
    return torch.where(zero.unsqueeze(1), fill, wave * ratio.unsqueeze(1)), err


def fourier_projection(
    psi: torch.Tensor, amplitudes: torch.Tensor, valid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(psi', e)``: exit waves ``[B, K, M, N]`` projected onto the measured moduli."""
    wave = far_field(psi)
    delta, err = detector_delta(wave, amplitudes, valid)
    return far_field_adjoint(wave.add_(delta)), err
