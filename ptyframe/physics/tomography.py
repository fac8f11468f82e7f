"""Model ptycho-tomography: a refractive-index volume rotated to every angle, then multislice.

Adorym supplement Algorithm 1 and section D.2: for angle ``theta_a`` (``geometry.theta_rad``)
the volume ``(delta, beta)`` ``[Nz, Ny, Nx]`` (beam along z at theta = 0, rotation about the
vertical y axis) is resampled at ``R_y(theta_a + t_y) R_x(t_x) R_z(t_z) r`` by differentiable
trilinear interpolation (``torch.nn.functional.grid_sample``, supp. eq. S17 in each plane; the
per-angle tilts ``t`` are refinable with ``refine_tilt``), cut into ``Nz`` slices of thickness
``dx`` and passed through the generic multislice model (``pure_projection`` for a sample within
the depth of focus). Per-angle position offsets (a wandering rotation axis) are refined with
``refine_angle_offsets``. ``Nz = Nx`` is required so that the rotation is rigid.

The volume lives in ``state.extras["delta"]`` and ``["beta"]``; ``state.object`` holds the
projected transmission at theta = 0 ``[1, Ny, Nx]`` for viewing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ptyframe.errors import ConfigError
from ptyframe.physics.base import ModelData
from ptyframe.physics.multislice import MultisliceConfig, PtychoModel
from ptyframe.physics.objects import Unknown, pow2, refractive_transmission
from ptyframe.physics.refinement import rotate_volume, rotation_matrix
from ptyframe.state import ReconstructionState, real_dtype

if TYPE_CHECKING:
    from ptyframe.data.geometry import ScanGeometry


@dataclass
class TomographyConfig(MultisliceConfig):
    """Ptycho-tomography: a (delta, beta) volume rotated per angle, multislice, far field."""

    name: str = "multislice_tomography"
    unknown: str = "refractive_index"
    n_slices: int = 0
    refine_tilt: bool = False

    def __post_init__(self) -> None:
        if self.unknown != "refractive_index":
            raise ConfigError(
                "multislice_tomography reconstructs a refractive-index volume: set "
                "physics.unknown=refractive_index"
            )
        n = self.n_slices
        self.n_slices = max(n, 1)
        super().__post_init__()
        self.n_slices = n


class TomographyModel(PtychoModel):
    """Ptycho-tomography (see module docstring)."""

    config: TomographyConfig
    config_cls = TomographyConfig

    multi_angle = True

    def object_slices(self) -> int:
        return 1

    @property
    def n_slices(self) -> int:
        return int(self._nz)

    def init_state(self, state: ReconstructionState, dataset: ModelData) -> ReconstructionState:
        """Return the state with a vacuum volume ``[Nz, Ny, Nx]`` in ``extras``."""
        self.setup(dataset.geometry, max(dataset.n_angles, len(dataset.geometry.theta_rad)))
        ny, nx = state.object.shape[-2:]
        nz = int(self.config.n_slices) or nx
        rdt = real_dtype(state.object.dtype)
        extras = dict(state.extras)
        for k in ("delta", "beta"):
            if k not in extras or extras[k].shape != (nz, ny, nx):
                extras[k] = torch.zeros((nz, ny, nx), dtype=rdt, device=state.object.device)
        obj = torch.ones((1, ny, nx), dtype=state.object.dtype, device=state.object.device)
        return ReconstructionState(obj, state.probe, state.positions_px, extras)

    def setup(self, geometry: ScanGeometry, n_angles: int = 1) -> None:
        self._nz = int(self.config.n_slices) or int(geometry.object_shape[-1])
        super().setup(geometry, n_angles)

    def unknowns(self, state: ReconstructionState) -> dict[str, Unknown]:
        delta = state.extras.get("delta")
        if delta is None or delta.dim() != 3:
            raise ConfigError("multislice_tomography needs the volume from engine.init_state")
        self._nz = int(delta.shape[0])
        if self._nz != delta.shape[-1]:
            raise ConfigError(
                f"the volume is {tuple(delta.shape)}; rotation about y needs Nz == Nx "
                "(set physics.n_slices to the object width)"
            )
        out = super().unknowns(state)
        if self.config.refine_tilt:
            t = state.extras.get("tilt_rad")
            if t is None or t.shape != (self.n_angles, 3):
                t = torch.zeros(self.n_angles, 3, dtype=torch.float64, device=delta.device)
                state.extras["tilt_rad"] = t
            out["tilt_rad"] = Unknown("geometry", t, pow2(1.0 / self._nz))
        return out

    def rotated(self, v: dict[str, torch.Tensor], angle: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (delta, beta) of the volume rotated to ``angle`` ``[Nz, Ny, Nx]`` each."""
        assert self.obj is not None and self.geometry is not None
        d, b = self.obj._delta_beta(v)
        theta = torch.tensor(
            float(self.geometry.theta_rad[angle]), dtype=torch.float64, device=d.device
        )
        tilt = v["tilt_rad"][angle] if "tilt_rad" in v else None
        if tilt is None and float(theta) == 0.0:
            return d, b
        mat = rotation_matrix(theta, tilt)
        out = rotate_volume(torch.stack([d, b]), mat)
        return out[0], out[1]

    def slices(self, v: dict[str, torch.Tensor], angle: int) -> torch.Tensor:
        """Return the ``Nz`` slice transmissions of the volume rotated to ``angle``."""
        assert self.obj is not None
        d, b = self.rotated(v, angle)
        return refractive_transmission(d, b, self.obj.k_dz)

    def store(self, v: dict[str, torch.Tensor], state: ReconstructionState) -> None:
        """Write the projected transmission at theta = 0 into ``state.object``."""
        assert self.obj is not None
        with torch.no_grad():
            d, b = self.obj._delta_beta(v)
            t = refractive_transmission(
                d.sum(0, keepdim=True), b.sum(0, keepdim=True), self.obj.k_dz
            )
            state.object.copy_(t.to(state.object.dtype))
