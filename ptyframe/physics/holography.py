"""Model multi-distance holography: one object, in-line holograms at several distances.

Adorym supplement section A: the holograms of one angle taken at ``D`` distances are the tiles
of that angle, "tile-then-distance" (tile ``t`` belongs to distance ``t // (n_tiles / D)``), with
distances from ``geometry.free_prop_m`` (``metadata/free_prop_cm``). Each tile is modelled as::

    I_t = | P_{d(t)} [ O(S_t) * P ] |^2            (supp. eqs. S1/S2, S6)

with ``P`` the (flat-field) illumination, fixed by default (``refine_probe=false``): a plane
wave of intensity ``flat_field`` (default: the mean measured intensity). Distances
(``refine_free_prop``) and an affine distortion per distance (``refine_affine``, supp. eq. S18)
may be refined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ptyframe.physics.base import ModelData
from ptyframe.physics.multislice import MultisliceConfig, PtychoModel
from ptyframe.state import ReconstructionState


@dataclass
class HolographyConfig(MultisliceConfig):
    """Multi-distance in-line holography (tiles of one angle at several distances)."""

    name: str = "multidistance_holography"
    n_slices: int = 1
    detector: str = "fresnel"
    refine_probe: bool = False
    flat_field: float | None = None


class HolographyModel(PtychoModel):
    """Multi-distance holography; the generic model with a flat, fixed illumination."""

    config: HolographyConfig
    config_cls = HolographyConfig

    def init_state(self, state: ReconstructionState, dataset: ModelData) -> ReconstructionState:
        """Return the state with a plane-wave probe ``sqrt(flat_field)`` ``[1, M, M]``."""
        state = super().init_state(state, dataset)
        flat = self.config.flat_field
        if flat is None:
            inten = np.clip(dataset.intensities(0), 0, None)
            flat = float(inten.mean())
        m, n = state.window
        probe = torch.full(
            (1, m, n), math.sqrt(max(flat, 0.0)), dtype=state.probe.dtype, device=state.probe.device
        )
        return ReconstructionState(state.object, probe, state.positions_px, state.extras)
