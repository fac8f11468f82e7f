"""Turn stored patterns into what engines consume: FFT-order amplitudes and a validity mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.geometry import ScanGeometry
from ptyframe.physics.fft import from_centred


@dataclass
class Measurements:
    """Measured amplitudes of the tiles one process works on.

    ``amplitudes`` ``[n, M, M]`` real, FFT order, ``sqrt(I)`` (0 where unmeasured);
    ``valid`` ``[n, M, M]`` bool, False where the stored value was negative (unmeasured), or
    None when every pixel was measured; ``indices`` ``[n]`` the tiles' indices in the file;
    ``geometry`` the whole scan's geometry (positions of all tiles).
    """

    amplitudes: torch.Tensor
    valid: torch.Tensor | None
    indices: np.ndarray
    geometry: ScanGeometry
    angle: int = 0

    @property
    def n(self) -> int:
        return int(self.amplitudes.shape[0])

    @property
    def window(self) -> tuple[int, int]:
        return (int(self.amplitudes.shape[-2]), int(self.amplitudes.shape[-1]))

    def amplitude_sum(self) -> float:
        """Return ``sum sqrt(I)`` over measured pixels (the data-error denominator)."""
        return float(self.amplitudes.sum(dtype=torch.float64))

    def mean_intensity_sum(self) -> float:
        """Return the mean over tiles of ``sum I`` over measured pixels (photons per pattern)."""
        return float(self.amplitudes.square().sum(dim=(-2, -1), dtype=torch.float64).mean())

    def batch(
        self, idx: torch.Tensor, device: str | torch.device
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the amplitudes (and mask, or None) of tiles ``idx`` on ``device``.

        Patterns kept on the host (``patterns_on_host=true``) while the unknowns live on a
        GPU are gathered on the host, copied into page-locked memory and sent with
        ``non_blocking=True``, one minibatch at a time; patterns already on ``device`` are
        only indexed.
        """
        device = torch.device(device)
        here = self.amplitudes.device
        i = idx.to(here)
        amps = self.amplitudes[i]
        valid = None if self.valid is None else self.valid[i]
        if here == device:
            return amps, valid
        pin = device.type == "cuda" and here.type == "cpu"
        return _send(amps, device, pin), None if valid is None else _send(valid, device, pin)

    @classmethod
    def from_dataset(
        cls,
        dataset: PtychoDataset,
        angle: int = 0,
        indices: np.ndarray | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Measurements:
        """Read tiles ``indices`` (all by default) of ``angle`` and convert them once."""
        if indices is None:
            indices = np.arange(dataset.n_tiles, dtype=np.int64)
        intens = torch.from_numpy(dataset.intensities(angle, indices))
        intens = from_centred(intens)
        measured = intens >= 0
        amps = torch.sqrt(torch.clamp(intens, min=0)).to(dtype)
        valid = None if bool(measured.all()) else measured
        return cls(
            amps.to(device).contiguous(),
            None if valid is None else valid.to(device).contiguous(),
            np.asarray(indices, dtype=np.int64),
            dataset.geometry,
            angle,
        )


def _send(t: torch.Tensor, device: torch.device, pin: bool) -> torch.Tensor:
    """Copy ``t`` to ``device`` (through page-locked memory when ``pin``), asynchronously."""
    return (t.pin_memory() if pin else t).to(device, non_blocking=pin)
