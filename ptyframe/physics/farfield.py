"""Model far-field (Fraunhofer) ptychography with incoherent probe modes.

For probe position ``r`` with integer corner ``c_r`` and fractional part ``f_r`` the model is
(PINE paper eq. 1, summed over mutually incoherent probe modes ``k``; Thibault & Menzel,
Nature 494, 68 (2013))::

    I_r = sum_k | F[ S_{c_r}(O) * P_k(. - f_r) ] |^2

with ``F`` the unitary FFT of ``ptyframe.physics.fft`` and ``S_c`` the window of the object at
corner ``c``. The sub-pixel part moves the probe, not the object (Fourier-shifted probe, as
in the Adorym supplement section D). Shapes: object ``[1, Ny, Nx]`` complex, probe
``[K, M, M]`` complex, positions ``[B, 2]`` float (y, x); outputs are batched over positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ptyframe.physics import fft, subpixel
from ptyframe.physics.patches import extract_patches, split_positions


@dataclass
class FarFieldConfig:
    """Far-field ptychography: one thin object, incoherent probe modes."""

    name: str = "farfield"


class FarFieldPtychography:
    """Far-field ptychography forward model (no unknowns inside)."""

    def __init__(self, config: FarFieldConfig | None = None) -> None:
        self.config = config or FarFieldConfig()

    @staticmethod
    def shifted_probes(probe: torch.Tensor, fractions_px: torch.Tensor) -> torch.Tensor:
        """Return ``P_k(r - f_b)`` as ``[B, K, M, M]`` (``ptyframe.physics.subpixel``)."""
        return subpixel.shifted_probes(probe, fractions_px)

    def exit_waves(
        self, obj: torch.Tensor, probe: torch.Tensor, positions_px: torch.Tensor
    ) -> torch.Tensor:
        """Return exit waves ``S_r(O) P_k(. - f_r)`` as ``[B, K, M, M]``."""
        if obj.dim() != 3 or obj.shape[0] != 1:
            raise ValueError(
                f"far-field ptychography takes a single-slice object [1, Ny, Nx], got "
                f"{tuple(obj.shape)}; use a multislice forward model for thick objects"
            )
        window = (probe.shape[-2], probe.shape[-1])
        corners, frac = split_positions(positions_px)
        patches = extract_patches(obj[0], corners, window)  # [B, M, M]
        return patches.unsqueeze(1) * self.shifted_probes(probe, frac)

    def detector_waves(
        self, obj: torch.Tensor, probe: torch.Tensor, positions_px: torch.Tensor
    ) -> torch.Tensor:
        """Return detector-plane waves ``[B, K, M, M]`` in FFT order."""
        return fft.far_field(self.exit_waves(obj, probe, positions_px))

    def intensities(
        self, obj: torch.Tensor, probe: torch.Tensor, positions_px: torch.Tensor
    ) -> torch.Tensor:
        """Return modelled intensities ``[B, M, M]`` (FFT order), summed over probe modes."""
        wave = self.detector_waves(obj, probe, positions_px)
        return (wave.real.square() + wave.imag.square()).sum(dim=1)
