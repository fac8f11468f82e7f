"""Model ptychography through a thick object: the generic forward model of the autodiff engine.

For a minibatch of tiles at angle ``a`` (Adorym supplement Algorithm 1)::

    r_b        = positions[b] + offset[a]                      (refinable: supp. D, D.2)
    P          = Fresnel_{z_defocus[a]}(P)                     (probe defocus, supp. D.2)
    psi_b,k    = P_k(. - f_b)                                  (Fourier-shifted probe, eq. S13)
    psi        <- P_{dz_j} ( O_j(S_{c_b}) psi )  for j = 1..L  (multislice, eq. S9)
    I_b        = sum_k | P_det,d_b(psi_b,k) |^2                (modes, eq. S12)
    I_b        <- Affine_{d_b}(I_b)                            (projection alignment, eq. S18)

``O_j`` are the slice transmissions of ``ptyframe.physics.objects`` (eqs. S1/S2). With
``pure_projection`` the slices are multiplied with no propagation between them (eq. S10/S11).
Slices are *dense* (``n_slices`` at equal spacing ``slice_spacing_m``, default the pixel size)
or *sparse* (``slice_positions_m``: each slice's z, refinable). ``P_det`` is the Fraunhofer FFT
(far field) or a near-field propagator over the free-propagation distance ``d`` measured from
the last slice; multi-distance data carry one distance per block of tiles
(``geometry.free_prop_m``, "tile-then-distance" order, supp. section A).

The far-field, one-slice case runs ``FarFieldPtychography`` itself. Every refinable quantity
is an ``Unknown`` (objects.py) in the ``geometry`` group unless said otherwise; lengths are
optimised in units of a natural scale (``pow2`` of the nominal value, or of ``dx^2/lambda``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from ptyframe.data.geometry import ScanGeometry
from ptyframe.errors import ConfigError
from ptyframe.physics import refinement
from ptyframe.physics.base import Batch, ForwardModel, ModelData
from ptyframe.physics.detector import short_buffer_message
from ptyframe.physics.farfield import FarFieldConfig, FarFieldPtychography
from ptyframe.physics.fft import from_centred, to_centred
from ptyframe.physics.objects import ObjectModel, ObjectOptions, Unknown, pow2
from ptyframe.physics.patches import extract_patches, split_positions
from ptyframe.physics.propagators import Propagator, apply_transfer, make_propagator
from ptyframe.state import ReconstructionState

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ptyframe.registry import BuildContext


@dataclass
class MultisliceConfig(ObjectOptions):
    """Multislice ptychography (dense or sparse slices, or pure projection), far or near field."""

    name: str = "multislice"
    n_slices: int = 2
    slice_spacing_m: float | None = None
    slice_positions_m: list[float] | None = None
    pure_projection: bool = False
    propagator: str = "fresnel"
    detector: str = "fraunhofer"
    free_prop_m: list[float] | None = None
    probe_defocus_m: float = 0.0
    refine_probe: bool = True
    refine_slice_positions: bool = False
    refine_defocus: bool = False
    refine_free_prop: bool = False
    refine_angle_offsets: bool = False
    refine_affine: bool = False
    #: Near field only: the exit wave is formed and propagated on a window ``buffer_px``
    #: larger on every side, then cropped at the detector (Adorym supp. sec. C; see
    #: ``PtychoModel.detector_waves``).
    buffer_px: int = 0

    def __post_init__(self) -> None:
        self.check_object_options()
        if int(self.buffer_px) < 0:
            raise ConfigError(f"{self.name}.buffer_px = {self.buffer_px} must be >= 0")
        if self.slice_positions_m is not None:
            self.slice_positions_m = [float(z) for z in self.slice_positions_m]
            if len(self.slice_positions_m) != self.n_slices:
                raise ConfigError(
                    f"{self.name}.slice_positions_m has {len(self.slice_positions_m)} values for "
                    f"n_slices={self.n_slices}; give one z per slice"
                )
        if self.n_slices < 1:
            raise ConfigError(f"{self.name}.n_slices = {self.n_slices} must be >= 1")
        if self.refine_slice_positions and self.slice_positions_m is None:
            raise ConfigError(
                f"{self.name}.refine_slice_positions needs {self.name}.slice_positions_m "
                "(sparse slices), e.g. [0.0, 2e-6]"
            )


class PtychoModel(ForwardModel):
    """Generic forward model (see module docstring); usable by ``AutodiffEngine``.

    Subclasses (holography, full-field CDI, tomography) narrow ``config`` to their config
    class and name it in ``config_cls``, the config a model built without one gets.
    """

    config: MultisliceConfig
    config_cls: ClassVar[type[MultisliceConfig]] = MultisliceConfig

    def __init__(
        self, config: MultisliceConfig | None = None, context: BuildContext | None = None
    ) -> None:
        self.config = config if config is not None else self.config_cls()
        self.slice_prop: Propagator = make_propagator(self.config.propagator, context)
        self.det_prop: Propagator = make_propagator(self.config.detector, context)
        self.farfield = FarFieldPtychography()
        self.geometry: ScanGeometry | None = None
        self.n_angles = 1
        self.obj: ObjectModel | None = None

    # ------------------------------------------------------------------ set-up
    @property
    def n_slices(self) -> int:
        return int(self.config.n_slices)

    @property
    def buffer_px(self) -> int:
        """The near-field buffer ``config.buffer_px`` (see ``MultisliceConfig``)."""
        return int(self.config.buffer_px)

    def object_slices(self) -> int:
        """Return how many slices ``state.object`` holds for this model."""
        return self.n_slices

    def setup(self, geometry: ScanGeometry, n_angles: int = 1) -> None:
        """Fix wavelength, pixel size, distances and the object representation."""
        self.geometry = geometry
        self.n_angles = int(n_angles)
        self.wavelength_m = geometry.wavelength_m
        self.pixel_size_m = geometry.pixel_size_m
        c = self.config
        thick = c.slice_thickness_m or c.slice_spacing_m or self.pixel_size_m
        self.obj = ObjectModel(c, self.wavelength_m, thick)
        self.far = not self.det_prop.near_field
        dists = c.free_prop_m if c.free_prop_m is not None else list(geometry.free_prop_m)
        if not self.far and not dists:
            raise ConfigError(
                f"{c.name}: near-field propagation to the detector needs a distance and the data "
                "file gives none (data-exchange: /metadata/free_prop_cm; CXI: the detector "
                "distance, read with +imaging=nearfield); set physics.free_prop_m=[D] in metres"
            )
        self.distances = [float(d) for d in dists] if not self.far else [0.0]
        if not self.far:
            self._check_buffer()
        if self.far and self.buffer_px:
            raise ConfigError(
                f"{c.name}.buffer_px needs a near-field detector (fresnel, angular_spectrum): "
                "far-field patterns do not wrap around; set buffer_px=0"
            )
        n_tiles = geometry.n_tiles
        if n_tiles % len(self.distances):
            raise ConfigError(
                f"{n_tiles} tiles cannot be split evenly over {len(self.distances)} distances"
            )
        self.tiles_per_distance = n_tiles // len(self.distances)

    def _check_buffer(self) -> None:
        """Warn when the buffer is shorter than the fringe reach over the farthest detector
        distance plus the slices' depth (``detector.short_buffer_message``)."""
        c = self.config
        if c.slice_positions_m is not None:
            depth = max(c.slice_positions_m) - min(c.slice_positions_m)
        else:
            depth = (self.n_slices - 1) * float(c.slice_spacing_m or self.pixel_size_m)
        distance = max(abs(d) for d in self.distances) + abs(depth)
        message = short_buffer_message(
            "physics", self.buffer_px, self.pixel_size_m, self.wavelength_m, distance
        )
        if message is not None:
            log.warning(message)

    def init_state(self, state: ReconstructionState, dataset: ModelData) -> ReconstructionState:
        """Return the runner's state reshaped to ``n_slices`` slices (and delta/beta)."""
        self.setup(dataset.geometry, dataset.n_angles)
        assert self.obj is not None
        state = self.obj.init_state(state, self.n_slices)
        b = self.buffer_px
        if b and state.window == tuple(dataset.geometry.window):
            probe = torch.view_as_real(state.probe).permute(0, 3, 1, 2)  # [K, 2, M, M]
            probe = torch.nn.functional.pad(probe, (b, b, b, b), mode="replicate")
            probe = torch.view_as_complex(probe.permute(0, 2, 3, 1).contiguous())
            state = ReconstructionState(state.object, probe, state.positions_px, state.extras)
        return state

    def unknowns(self, state: ReconstructionState) -> dict[str, Unknown]:
        """Return every quantity the model reads, by name, with its group and scale."""
        assert self.obj is not None and self.geometry is not None, "call setup() first"
        c = self.config
        if state.object.shape[0] != self.object_slices():
            raise ConfigError(
                f"{c.name} has n_slices={self.object_slices()} but the object has "
                f"{state.object.shape[0]} slices; build the state with engine.init_state"
            )
        out = self.obj.unknowns(state)
        pmax = float(state.probe.abs().max())
        out["probe"] = Unknown("probe", state.probe, pow2(pmax), fixed=not c.refine_probe)
        ny, nx = state.object.shape[-2:]
        m, n = (w - 2 * self.buffer_px for w in state.window)

        def clamp_positions(p: torch.Tensor) -> None:
            p[:, 0].clamp_(0.0, float(ny - m))
            p[:, 1].clamp_(0.0, float(nx - n))

        out["positions"] = Unknown("positions", state.positions_px, 1.0, project=clamp_positions)
        dev = state.object.device
        f64 = torch.float64
        ex = state.extras

        def extra(name: str, init: torch.Tensor) -> torch.Tensor:
            if name not in ex or ex[name].shape != init.shape:
                ex[name] = init
            return ex[name]

        dof = pow2(self.pixel_size_m**2 / self.wavelength_m)  # depth of field of one pixel
        if c.refine_defocus or c.probe_defocus_m:
            t = extra(
                "probe_defocus_m",
                torch.full((self.n_angles,), c.probe_defocus_m, dtype=f64, device=dev),
            )
            sc = pow2(abs(c.probe_defocus_m) or max(m, n) * dof)  # or: Fresnel number ~M
            out["probe_defocus_m"] = Unknown("geometry", t, sc, fixed=not c.refine_defocus)
        if c.slice_positions_m is not None:
            t = extra("slice_positions_m", torch.tensor(c.slice_positions_m, dtype=f64, device=dev))
            sc = pow2(max(abs(z) for z in c.slice_positions_m) or dof)
            out["slice_positions_m"] = Unknown(
                "geometry", t, sc, fixed=not c.refine_slice_positions
            )
        if not self.far:
            t = extra("free_prop_m", torch.tensor(self.distances, dtype=f64, device=dev))
            sc = pow2(max(abs(d) for d in self.distances) or dof)
            out["free_prop_m"] = Unknown("geometry", t, sc, fixed=not c.refine_free_prop)
        if c.refine_angle_offsets:
            t = extra("angle_offsets_px", torch.zeros(self.n_angles, 2, dtype=f64, device=dev))
            out["angle_offsets_px"] = Unknown("geometry", t, 1.0)
        if c.refine_affine:
            shape = (len(self.distances), refinement.AFFINE_PARAMS)
            t = extra("affine", torch.zeros(shape, dtype=f64, device=dev))
            out["affine"] = Unknown("geometry", t, pow2(1.0 / max(m, n)))
        return out

    # ------------------------------------------------------------------ forward
    def slices(self, v: dict[str, torch.Tensor], angle: int) -> torch.Tensor:
        """Return the slice transmissions ``[S, Ny, Nx]`` seen at ``angle``."""
        assert self.obj is not None
        return self.obj.transmission(v)

    def padded(self, slices: torch.Tensor) -> torch.Tensor:
        """Return ``slices`` ``[S, Ny, Nx]`` with ``buffer_px`` of vacuum (1) on every side."""
        b = self.buffer_px
        if not b:
            return slices
        s, ny, nx = slices.shape
        out = torch.ones((s, ny + 2 * b, nx + 2 * b), dtype=slices.dtype, device=slices.device)
        out[:, b : b + ny, b : b + nx] = slices
        return out

    def slice_distances(self, v: dict[str, torch.Tensor]) -> torch.Tensor | float:
        """Return the propagation distances between consecutive slices (``[S-1]`` or a float)."""
        if "slice_positions_m" in v:
            z = v["slice_positions_m"]
            return z[1:] - z[:-1]
        return float(self.config.slice_spacing_m or self.pixel_size_m)

    def probe_at(self, v: dict[str, torch.Tensor], angle: int) -> torch.Tensor:
        """Return the probe modes ``[K, M, M]`` at the entrance plane (after defocus)."""
        probe = v["probe"]
        if "probe_defocus_m" in v:
            d = v["probe_defocus_m"][angle]
            probe = self.slice_prop(probe, d, self.pixel_size_m, self.wavelength_m)
        return probe

    def positions(self, v: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        """Return the positions ``[B, 2]`` of the batch (with the angle's offset)."""
        pos = v["positions"][batch.tiles]
        if "angle_offsets_px" in v:
            pos = pos + v["angle_offsets_px"][batch.angle]
        return pos

    def exit_waves(
        self,
        slices: torch.Tensor,
        probe: torch.Tensor,
        pos: torch.Tensor,
        v: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """Return exit waves ``[B, K, M, M]`` behind the last slice (eqs. S9-S11, S13).

        With ``buffer_px`` b the probe is ``[K, M + 2b, M + 2b]`` and the object is padded
        with vacuum, so the window at corner ``c`` covers ``c - b .. c + M + b``.
        """
        slices = self.padded(slices)
        if slices.shape[0] == 1:
            return self.farfield.exit_waves(slices, probe, pos)
        window = (probe.shape[-2], probe.shape[-1])
        corners, frac = split_positions(pos)
        chunks = extract_patches(slices, corners, window)  # [B, S, M, M]
        psi = self.farfield.shifted_probes(probe, frac)  # [B, K, M, M]
        if self.config.pure_projection:
            return psi * torch.prod(chunks, dim=1, keepdim=False).unsqueeze(1)
        dz = self.slice_distances(v)
        n = chunks.shape[1]
        kernels = None
        if not isinstance(dz, torch.Tensor):  # dense: one kernel for every gap
            kernels = self.slice_prop.kernel(
                window, self.pixel_size_m, self.wavelength_m, dz, psi.device
            ).to(psi.dtype)
        for j in range(n):
            psi = psi * chunks[:, j : j + 1]
            if j < n - 1:
                if kernels is None:
                    assert isinstance(dz, torch.Tensor)
                    psi = self.slice_prop(psi, dz[j], self.pixel_size_m, self.wavelength_m)
                else:
                    psi = torch.fft.ifft2(torch.fft.fft2(psi) * kernels)
        return psi

    def detector_waves(
        self, psi: torch.Tensor, v: dict[str, torch.Tensor], batch: Batch
    ) -> torch.Tensor:
        """Propagate exit waves ``[B, K, M, M]`` to the detector (FFT order if far field)."""
        if self.far:
            return self.det_prop(psi, 0.0, self.pixel_size_m, self.wavelength_m)
        dist_idx = torch.div(batch.tiles, self.tiles_per_distance, rounding_mode="floor")
        d = v["free_prop_m"][dist_idx]  # [B]
        k = self.det_prop.kernel(
            (psi.shape[-2], psi.shape[-1]), self.pixel_size_m, self.wavelength_m, d, psi.device
        )  # [B, M, M]
        out = apply_transfer(psi, k[:, None])
        b = self.buffer_px
        if b:  # the buffer zone takes the wrap-around; the detector sees the centre
            out = out[..., b : out.shape[-2] - b, b : out.shape[-1] - b]
        return out

    def predict(self, v: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        """Return modelled intensities ``[B, M, M]`` for ``batch`` in detector order.

        Detector order is how ``Measurements`` holds every stored frame (``from_centred``): FFT
        order for far-field patterns, the real-space image rolled by ``-(M // 2)`` for near field.
        """
        slices = self.slices(v, batch.angle)
        probe = self.probe_at(v, batch.angle)
        pos = self.positions(v, batch)
        if self.far and slices.shape[0] == 1:
            inten = self.farfield.intensities(slices, probe, pos)
        else:
            wave = self.detector_waves(self.exit_waves(slices, probe, pos, v), v, batch)
            inten = (wave.real.square() + wave.imag.square()).sum(dim=1)
        if "affine" in v:
            inten = self.warp(inten, v["affine"], batch)
        if not self.far:  # detector order: the stored image through from_centred, as measured
            inten = from_centred(inten)
        return inten

    def warp(self, inten: torch.Tensor, affine: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Apply each tile's distance's affine distortion (eq. S18) to real-space images."""
        if self.far:  # far-field patterns are in FFT order: warp them centred
            inten = to_centred(inten)
        dist_idx = torch.div(batch.tiles, self.tiles_per_distance, rounding_mode="floor")
        mats = refinement.affine_matrices(affine, (inten.shape[-2], inten.shape[-1]))[dist_idx]
        out = refinement.warp_images(inten, mats)
        return from_centred(out) if self.far else out

    # ------------------------------------------------------------------ object access
    def fields(self, v: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (phase shift, absorption) fields the regularizers act on."""
        assert self.obj is not None
        return self.obj.fields(v)

    def store(self, v: dict[str, torch.Tensor], state: ReconstructionState) -> None:
        """Write derived quantities (the transmission of a refractive object) into ``state``."""
        assert self.obj is not None
        self.obj.store(v, state)

    def end_epoch(self, v: dict[str, torch.Tensor], state: ReconstructionState, epoch: int) -> bool:
        """Shrink-wrap the support every ``shrinkwrap_every`` epochs; return if it changed."""
        assert self.obj is not None
        every = int(self.config.shrinkwrap_every)
        if every and self.config.support and (epoch + 1) % every == 0:
            return self.obj.update_support(v, state)
        return False


def farfield_model(
    config: FarFieldConfig | None = None, context: BuildContext | None = None
) -> PtychoModel:
    """Return far-field ptychography as a forward model (``physics=farfield``).

    A one-slice ``PtychoModel`` with a Fraunhofer detector that runs
    ``FarFieldPtychography`` itself (its batched exit waves and intensities).
    """
    model = PtychoModel(MultisliceConfig(name="farfield", n_slices=1), context)
    model.farfield = FarFieldPtychography(config)
    return model


def as_model(
    forward_model: ForwardModel | FarFieldPtychography | None,
    context: BuildContext | None = None,
) -> ForwardModel:
    """Return ``forward_model`` if it is a ``ForwardModel``, or wrap a far-field one.

    ``FarFieldPtychography`` (or None) becomes the one-slice far-field model of
    ``farfield_model`` that runs it; anything else is a ``ConfigError``.
    """
    if isinstance(forward_model, ForwardModel):
        return forward_model
    if forward_model is None or isinstance(forward_model, FarFieldPtychography):
        model = farfield_model(None, context)
        if forward_model is not None:
            model.farfield = forward_model
        return model
    raise ConfigError(
        f"forward model {type(forward_model).__name__} is not a "
        "ptyframe.physics.base.ForwardModel: it cannot be optimised by engine=autodiff; "
        "choose physics=farfield, multislice, nearfield, ..."
    )
