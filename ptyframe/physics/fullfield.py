"""Model full-field coherent diffraction imaging (CDI): one tile, far field, support.

Adorym supplement section D: full-field CDI is "a special type of ptychography with 1 tile
per angle, and with detector size equal to the y- and x-dimensions of the object array". The
object is an isolated exit wave: outside the support it is zero (``support_fill = 0``), the
support starts as the thresholded autocorrelation ``|F^-1 I| > support_threshold * max``
(twice the object's extent) and is shrink-wrapped every ``shrinkwrap_every`` epochs
(Marchesini et al. 2003). The illumination is a fixed plane wave whose power equals the
measured photon count (Parseval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ptyframe.physics.base import ModelData
from ptyframe.physics.fft import from_centred, to_centred
from ptyframe.physics.multislice import MultisliceConfig, PtychoModel
from ptyframe.state import ReconstructionState


@dataclass
class FullFieldConfig(MultisliceConfig):
    """Full-field CDI: one far-field pattern of an isolated object, with a support."""

    name: str = "fullfield_cdi"
    n_slices: int = 1
    detector: str = "fraunhofer"
    refine_probe: bool = False
    support: bool = True
    support_fill: float = 0.0
    support_threshold: float = 0.04
    shrinkwrap_every: int = 20


class FullFieldModel(PtychoModel):
    """Full-field CDI (see module docstring)."""

    config: FullFieldConfig
    config_cls = FullFieldConfig

    def init_state(self, state: ReconstructionState, dataset: ModelData) -> ReconstructionState:
        """Return a plane-wave probe, the autocorrelation support and a supported object."""
        state = super().init_state(state, dataset)
        inten = torch.from_numpy(np.clip(dataset.intensities(0), 0, None).mean(0))
        m, n = state.window
        photons = float(inten.sum())
        probe = torch.full(
            (1, m, n),
            math.sqrt(photons / (m * n)),
            dtype=state.probe.dtype,
            device=state.probe.device,
        )
        extras = dict(state.extras)
        if "support" not in extras or bool(extras["support"].all()):
            auto = to_centred(torch.fft.ifft2(from_centred(inten.to(torch.float64))).abs())
            sup = auto > float(self.config.support_threshold) * float(auto.max())
            ny, nx = state.object.shape[-2:]
            full = torch.zeros((ny, nx), dtype=torch.bool)
            full[: sup.shape[0], : sup.shape[1]] = sup[:ny, :nx]
            extras["support"] = full.to(state.object.device)
        obj = state.object.clone()
        obj[..., ~extras["support"]] = float(self.config.support_fill)
        return ReconstructionState(obj, probe, state.positions_px, extras)
