"""Score a reconstruction on patterns it never fitted: the validation data error.

For the held-out tiles ``v`` (``ptyframe.data.holdout``) with measured amplitudes
``a_v = sqrt(I_v)``, the current object ``O`` and probe modes ``P_k``::

    A_v = sqrt( sum_k | F[ S_v(O) P_k(. - f_v) ] |^2 )          (far-field model, PINE eq. 1)
    validation_error = sum_v sum_valid | A_v - a_v |  /  sum_v sum_valid a_v

the same normalised amplitude error the engines report as ``data_error`` (PINE reference
code; ``ptyframe.physics.projection``), only on patterns that no update has seen. Without
ground truth it ranks step sizes and stopping points: an overfitted object (noise fitted
into the dark field) explains its own patterns better but the held-out ones worse.

Forward model: far field with one thin object (``[1, Ny, Nx]``) and incoherent probe modes,
so it applies to every engine on far-field data (ePIE/rPIE, PINE, mPIE, LSQML, autodiff with
``physics=farfield``). Other forward models (multislice, near field, tomography) raise.
"""

from __future__ import annotations

import numpy as np
import torch

from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.measurements import Measurements
from ptyframe.errors import ConfigError
from ptyframe.physics.farfield import FarFieldPtychography
from ptyframe.physics.projection import model_modulus
from ptyframe.state import ReconstructionState


class ValidationSet:
    """The held-out patterns of a run, converted once, and their data error under a state."""

    def __init__(
        self,
        held_out: PtychoDataset,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch: int = 32,
    ) -> None:
        self.meas = Measurements.from_dataset(held_out, 0, None, device, dtype)
        self.positions_px = torch.as_tensor(
            np.asarray(held_out.geometry.positions_px), dtype=torch.float64, device=device
        )
        self.batch = int(batch)
        self.model = FarFieldPtychography()
        self._amp_total = self.meas.amplitude_sum()

    @property
    def n(self) -> int:
        return self.meas.n

    def error(self, state: ReconstructionState) -> float:
        """Return the validation error of ``state`` (whole object) on the held-out patterns."""
        obj, probe = state.object.detach(), state.probe.detach()
        if obj.dim() != 3 or obj.shape[0] != 1:
            raise ConfigError(
                f"validation_error needs a single-slice far-field object [1, Ny, Nx]; this "
                f"run's object is {tuple(obj.shape)} (set data.validation_fraction=0)"
            )
        if self._amp_total <= 0:
            return float("nan")
        amps, valid = self.meas.amplitudes, self.meas.valid
        total = 0.0
        with torch.no_grad():
            for s in range(0, self.n, self.batch):
                pos = self.positions_px[s : s + self.batch]
                wave = self.model.detector_waves(obj, probe, pos)
                diff = (model_modulus(wave) - amps[s : s + self.batch].to(wave.real.dtype)).abs_()
                if valid is not None:
                    diff.mul_(valid[s : s + self.batch])
                total += float(diff.sum(dtype=torch.float64))
        return total / self._amp_total
