"""Hold the unknowns of a reconstruction: object, probe modes and probe positions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

COMPLEX_DTYPES = {"complex64": torch.complex64, "complex128": torch.complex128}


def complex_dtype(name: str) -> torch.dtype:
    """Return the torch complex dtype called ``name`` (``complex64`` or ``complex128``)."""
    try:
        return COMPLEX_DTYPES[name]
    except KeyError:
        raise ValueError(
            f"dtype {name!r} is not supported; use one of {', '.join(COMPLEX_DTYPES)}"
        ) from None


def real_dtype(cdtype: torch.dtype) -> torch.dtype:
    """Return the real dtype matching a complex dtype."""
    return torch.float64 if cdtype == torch.complex128 else torch.float32


@dataclass
class ReconstructionState:
    """The unknowns: object ``[S, Ny, Nx]``, probe ``[K, M, M]`` (complex), positions ``[N, 2]``.

    ``positions_px`` are (y, x) top-left corners of the probe window in object pixels
    (float64). ``extras`` holds further refinable quantities (geometry) by name.
    """

    object: torch.Tensor
    probe: torch.Tensor
    positions_px: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.object.dim() != 3 or not self.object.is_complex():
            raise ValueError(f"object must be complex [S, Ny, Nx], got {tuple(self.object.shape)}")
        if self.probe.dim() != 3 or not self.probe.is_complex():
            raise ValueError(f"probe must be complex [K, M, M], got {tuple(self.probe.shape)}")
        if self.positions_px.dim() != 2 or self.positions_px.shape[1] != 2:
            raise ValueError(f"positions must be [N, 2], got {tuple(self.positions_px.shape)}")

    @property
    def window(self) -> tuple[int, int]:
        return (int(self.probe.shape[-2]), int(self.probe.shape[-1]))

    def clone(self) -> ReconstructionState:
        return ReconstructionState(
            self.object.clone(),
            self.probe.clone(),
            self.positions_px.clone(),
            {k: v.clone() for k, v in self.extras.items()},
        )

    def to(self, device: str | torch.device) -> ReconstructionState:
        return ReconstructionState(
            self.object.to(device),
            self.probe.to(device),
            self.positions_px.to(device),
            {k: v.to(device) for k, v in self.extras.items()},
        )

    def is_finite(self) -> bool:
        """Return whether object, probe and positions hold only finite numbers.

        Checked in pieces of 2^20 values on real views: ``torch.isfinite`` of a whole complex
        object would allocate about its own size again (a bool per complex value).
        """
        tensors = [self.object, self.probe, self.positions_px, *self.extras.values()]
        for t in tensors:
            flat = (torch.view_as_real(t) if t.is_complex() else t).detach().reshape(-1)
            if not all(bool(torch.isfinite(piece).all()) for piece in flat.split(2**20)):
                return False
        return True

    def numpy(self) -> dict[str, np.ndarray]:
        """Return detached NumPy copies keyed as in ``recon.h5``."""
        out = {
            "object": self.object.detach().cpu().numpy(),
            "probe": self.probe.detach().cpu().numpy(),
            "positions_px": self.positions_px.detach().cpu().numpy(),
        }
        for k, v in self.extras.items():
            out[f"extras/{k}"] = v.detach().cpu().numpy()
        return out
