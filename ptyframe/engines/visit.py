"""Choose what one visit of a fast engine propagates through: exit-wave model and propagator.

The visit pipeline of the fast engines (``ptyframe.engines.frame`` module docstring), for a
position with integer corner ``c`` and the shifted probe ``P_j``::

    windows  <- the S slices' windows at c, ``M' x N'``  (``M' = M + 2b``, b the buffer)
    psi      <- exit-wave model (one slice: O P_j; S slices: the multislice chain)
    Psi      <- propagator.forward(psi)          far field: F psi; near field: Fresnel, cropped
    delta    <- modulus constraint against the pattern (``physics.projection``)
    chi      <- propagator.adjoint(delta)
    steps    <- the chain backwards with the engine's rule per slice
                (``physics.exitwave``: e3PIE for the PIE family, LSQML's gradient directions)

The exit-wave models are ``ptyframe.physics.exitwave``, the propagators
``ptyframe.physics.detector``. ``VisitModel`` holds the pair a run uses, built by
``build_visit`` from the run's physics (the forward model ``physics=farfield | nearfield |
multislice`` that autodiff would optimise, read for its propagator, slices and buffer). The
far field with one slice is ``plain``: the engines keep their own sweeps then (the fused
numba kernels, bit for bit the far-field runs without this module).

Buffer zone (near field, autodiff's model ``ptyframe.physics.multislice.PtychoModel``): the
probe is ``M + 2b`` on a side and the object is taken as padded with ``b`` pixels of vacuum
(transmission 1) on every side, so the window of corner ``c`` covers object pixels
``c - b .. c + M + b``. ``read_box`` cuts such a window (vacuum where it leaves the object)
and ``add_box`` adds a step back onto the object, dropping what falls in the vacuum border,
which therefore stays vacuum as in autodiff's model. The scan's corners are those of the
padded object (``c`` itself), so ``ScanWindows`` is made for the window ``M'`` on the object
``(H + 2b, W + 2b)``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from ptyframe.engines.rules import PieRule, abs2, pie_coefficients
from ptyframe.errors import ConfigError
from ptyframe.physics.detector import (
    FarFieldPropagator,
    NearFieldPropagator,
    PropagatorSpec,
    build_detector_propagator,
)
from ptyframe.physics.exitwave import (
    MultisliceExitWave,
    SingleSliceExitWave,
    SliceRule,
    build_exit_wave,
)

if TYPE_CHECKING:
    from ptyframe.data.geometry import ScanGeometry

log = logging.getLogger("ptyframe")

#: Options of the physics config the fast engines do not run (each stays at its default).
AUTODIFF_ONLY = (
    "pure_projection",
    "probe_defocus_m",
    "refine_slice_positions",
    "refine_defocus",
    "refine_free_prop",
    "refine_angle_offsets",
    "refine_affine",
    "refine_kappa",
    "support",
)


@dataclass
class VisitModel:
    """The exit-wave model and the propagator of a run's visits (module docstring)."""

    exit_wave: SingleSliceExitWave | MultisliceExitWave
    propagator: FarFieldPropagator | NearFieldPropagator
    n_slices: int = 1
    #: Run the general visit even through the plain far field (tests compare the two).
    general: bool = False

    @property
    def buffer_px(self) -> int:
        """``b``: the buffer zone on every side of the detector window (0 in the far field)."""
        return int(self.propagator.buffer_px)

    @property
    def near_field(self) -> bool:
        return bool(self.propagator.near_field)

    @property
    def plain(self) -> bool:
        """Far field through one slice: the engines' own sweeps (and numba kernels) run."""
        return not (self.general or self.near_field or self.n_slices > 1)

    @property
    def near_field_one_slice(self) -> bool:
        """Near field through one slice: what the PIE family's numba sweep also runs
        (``ptyframe.engines.nearfield_sweep``)."""
        return self.near_field and self.n_slices == 1 and not self.general

    @property
    def multislice(self) -> bool:
        """Several slices, far or near field: what the PIE family's numba sweep also runs
        (``ptyframe.engines.multislice_sweep``)."""
        return self.n_slices > 1 and not self.general

    def numba_covers(self, near_field: bool, multislice: bool) -> bool:
        """Return whether a numba path runs this model: the plain far field always, the near
        field through one slice with ``near_field``, several slices with ``multislice``."""
        return (
            self.plain
            or (near_field and self.near_field_one_slice)
            or (multislice and self.multislice)
        )

    @property
    def name(self) -> str:
        """The propagator's name (``farfield`` or ``nearfield``)."""
        return str(self.propagator.name)

    def describe(self) -> dict[str, str]:
        """Return the propagator and the slices for ``recon.h5`` (nothing for ``plain``)."""
        if self.plain:
            return {}
        out = {"propagator": self.name, "slices": str(self.n_slices)}
        if self.buffer_px:
            out["buffer_px"] = str(self.buffer_px)
        return out


def far_field_visits(window: tuple[int, int]) -> VisitModel:
    """Return the plain model: one slice, the far field (what an engine without physics runs)."""
    return VisitModel(SingleSliceExitWave(), FarFieldPropagator(window))


def _physics_config(physics: Any) -> Any:
    """Return the physics' config if it is the generic ptychography model, else refuse."""
    from ptyframe.physics.multislice import PtychoModel

    if physics is None:
        return None
    if type(physics) is not PtychoModel:
        name = getattr(getattr(physics, "config", None), "name", type(physics).__name__)
        raise ConfigError(
            f"physics={name} is not a model the fast engines run (far field, near field, "
            "multislice); use engine=autodiff"
        )
    return physics.config


def check_physics(owner: str, physics: Any) -> None:
    """Raise ``ConfigError`` for physics options the fast engines do not run (at build time)."""
    c = _physics_config(physics)
    if c is None:
        return
    for key in AUTODIFF_ONLY:
        if hasattr(c, key) and bool(getattr(c, key)):
            raise ConfigError(
                f"physics.{key} is not run by engine {owner} (only engine=autodiff refines "
                f"or models it); remove it or use engine=autodiff"
            )
    if getattr(c, "unknown", "transmission") != "transmission":
        raise ConfigError(
            f"engine {owner} reconstructs transmissions; physics.unknown={c.unknown} needs "
            "engine=autodiff"
        )


def is_plain(physics: Any) -> bool:
    """Return whether ``physics`` (or None) is the far field through one slice."""
    c = _physics_config(physics)
    if c is None:
        return True
    near = str(c.detector) in ("fresnel", "angular_spectrum")
    return not near and int(c.n_slices) == 1


def build_visit(
    physics: Any,
    geometry: ScanGeometry,
    detector_shape: tuple[int, int],
    dtype: torch.dtype,
    device: torch.device | str,
) -> VisitModel:
    """Return the visit model of ``physics`` (a ``PtychoModel`` or None: the far field).

    ``detector_shape`` ``(M, N)``: the measured frame; pixel, wavelength and the near-field
    distance come from ``geometry`` (the data file, cone-beam scaled by the reader) unless the
    physics config sets ``free_prop_m``; slices are ``n_slices`` apart by ``slice_spacing_m``
    (default: the pixel) or at ``slice_positions_m``.
    """
    c = _physics_config(physics)
    if c is None or is_plain(physics):
        return far_field_visits(detector_shape)
    near = str(c.detector) in ("fresnel", "angular_spectrum")
    distance = None
    if near:
        dists = list(c.free_prop_m) if c.free_prop_m is not None else list(geometry.free_prop_m)
        if len(dists) > 1:
            raise ConfigError(
                f"{len(dists)} detector distances (multi-distance holography) are run by "
                "engine=autodiff only; give one physics.free_prop_m"
            )
        distance = float(dists[0]) if dists else None
    spec = PropagatorSpec(near, distance, int(c.buffer_px), str(c.detector) if near else "fresnel")
    prop = build_detector_propagator(
        spec, detector_shape, geometry.pixel_size_m, geometry.wavelength_m, dtype, device
    )
    n = int(c.n_slices)
    gaps: float | Sequence[float] | None = None
    if n > 1:
        if c.slice_positions_m is not None:
            z = [float(v) for v in c.slice_positions_m]
            gaps = [b - a for a, b in zip(z[:-1], z[1:], strict=True)]
        else:
            gaps = float(c.slice_spacing_m or geometry.pixel_size_m)
    kernel = "angular_spectrum" if str(c.propagator) == "angular_spectrum" else "fresnel"
    exit_wave = build_exit_wave(
        n,
        prop.exit_shape,
        geometry.pixel_size_m,
        geometry.wavelength_m,
        gaps,
        kernel,
        dtype,
        device,
    )
    return VisitModel(exit_wave, prop, n)


# ---------------------------------------------------------------------- windows with a border
def _clip(lo: int, size: int, limit: int) -> tuple[int, int, int]:
    """Return ``(a, b, offset)``: the part ``[a, b)`` of ``[lo, lo + size)`` inside
    ``[0, limit)`` and where it starts in the window."""
    a, b = max(lo, 0), min(lo + size, limit)
    return a, max(b, a), a - lo


def read_box(obj: torch.Tensor, y: int, x: int, h: int, w: int) -> torch.Tensor:
    """Return the region ``[S, h, w]`` of ``obj`` ``[S, H, W]`` at ``(y, x)`` (may be negative
    or run past the edge: vacuum, 1, there); a view where the region lies inside."""
    _, height, width = obj.shape
    if y >= 0 and x >= 0 and y + h <= height and x + w <= width:
        return obj[:, y : y + h, x : x + w]
    out = torch.ones((obj.shape[0], h, w), dtype=obj.dtype, device=obj.device)
    y0, y1, oy = _clip(y, h, height)
    x0, x1, ox = _clip(x, w, width)
    out[:, oy : oy + y1 - y0, ox : ox + x1 - x0] = obj[:, y0:y1, x0:x1]
    return out


def add_box(obj: torch.Tensor, step: torch.Tensor, y: int, x: int) -> None:
    """Add ``step`` ``[S, h, w]`` onto ``obj`` ``[S, H, W]`` at ``(y, x)``, dropping the part
    outside the object (the vacuum border stays vacuum)."""
    _, height, width = obj.shape
    h, w = step.shape[-2:]
    y0, y1, oy = _clip(y, h, height)
    x0, x1, ox = _clip(x, w, width)
    obj[:, y0:y1, x0:x1] += step[:, oy : oy + y1 - y0, ox : ox + x1 - x0]


# ---------------------------------------------------------------------- the PIE rule per slice
def pie_slice_rule(rule: PieRule) -> SliceRule:
    """Return the PIE family's rule applied to each slice (e3PIE, Maiden, Humphry & Rodenburg,
    J. Opt. Soc. Am. A 29, 1606 (2012), with the ePIE/rPIE/mPIE steps of
    ``ptyframe.engines.rules`` on one position)::

        dO_s = f_O sum_k conj(u_sk) chi_sk / (c_O sum_k |u_sk|^2 + d_O)
        du_s = f_P conj(O_s)       chi_s  / (c_P |O_s|^2         + d_P)

    the incident wave ``u_s`` in the probe's place, the coefficients from
    ``rules.pie_coefficients`` (as ``rules.pie_update``, which this equals to rounding; the
    ePIE denominators, ``c = 0``, are applied as one real factor). The first slice's ``du_0``
    is the probe step (taken only when the rule updates the probe); a later slice always
    takes its ``du_s``, which carries the change back to the slice before
    (``chi_{s-1} = Q^H du_s``). Windows ``[1, M, N]``, incident waves and ``chi``
    ``[1, K, M, N]`` (one position).
    """
    inner = replace(rule, update_probe=True, accumulate=True)

    def step(
        s: int, window: torch.Tensor, incident: torch.Tensor, chi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        o, u, c = window[0], incident[0], chi[0]  # [M, N], [K, M, N], [K, M, N]
        u_abs2 = abs2(u).sum(0) if u.shape[0] > 1 else abs2(u[0])
        o_abs2 = abs2(o)
        fo, co, do, fp, cp, dp = pie_coefficients(
            rule if s == 0 else inner, float(o_abs2.max()), float(u_abs2.max())
        )
        num = (u.conj() * c).sum(0) if u.shape[0] > 1 else u[0].conj() * c[0]
        o_step = (
            num.mul_(fo / do)
            if co == 0
            else num.mul_(u_abs2.mul_(co).add_(do).reciprocal_().mul_(fo))
        )
        if fp == 0:
            u_step = torch.zeros_like(u)
        elif cp == 0:
            u_step = (o.conj() * c).mul_(fp / dp)
        else:
            u_step = (o.conj() * c).mul_(o_abs2.mul_(cp).add_(dp).reciprocal_().mul_(fp))
        return o_step.unsqueeze(0), u_step.unsqueeze(0)

    return step


# ---------------------------------------------------------------------- the frame's checks
def frame_visit(
    owner: str,
    capabilities: Any,
    backend: str,
    physics: Any,
    geometry: ScanGeometry,
    detector_shape: tuple[int, int],
    state_window: tuple[int, int],
    n_slices: int,
    dtype: torch.dtype,
    device: torch.device | str,
    numba_near_field: bool = False,
    numba_multislice: bool = False,
) -> VisitModel:
    """Return the run's visit model after the frame's checks (``FastEngine.prepare``).

    Refused, each in one ``ConfigError`` line: a propagator or slices the engine does not
    declare (``Capabilities.propagators``, ``slices``), a state whose slices or probe window
    do not fit the physics, ``engine.backend=numba`` where the fused kernels do not cover
    the run (the far field through one slice; with ``numba_near_field``, the engine's numba
    sweep running it, also the near field through one slice; with ``numba_multislice``
    several slices, far or near field). With ``backend=auto`` such a run takes the torch
    sweep (logged; ``recon.h5`` records ``engine_backend``).
    """
    visit = build_visit(physics, geometry, detector_shape, dtype, device)
    if visit.name not in capabilities.propagators:
        raise ConfigError(
            f"engine {owner} runs the {', '.join(capabilities.propagators)} propagator(s), not "
            f"{visit.name}; use engine=autodiff or an engine declaring it"
        )
    if n_slices != visit.n_slices:
        raise ConfigError(
            f"the physics has {visit.n_slices} slice(s) but the state {n_slices}; build the "
            "state with engine.init_state"
        )
    b = visit.buffer_px
    if tuple(w + 2 * b for w in detector_shape) != tuple(state_window):
        raise ConfigError(
            f"patterns are {tuple(detector_shape)} but the probe is {tuple(state_window)}; "
            "they must match" + (f" (plus the buffer, {b} px on every side)" if b else "")
        )
    if not visit.numba_covers(numba_near_field, numba_multislice):
        covered = "the far field" + (" or the near field" if numba_near_field else "")
        covered += " through one slice" + (" or several" if numba_multislice else "")
        if backend == "numba":
            raise ConfigError(
                f"{owner}.backend = numba runs {covered}; this run has "
                f"{visit.name} propagation and {visit.n_slices} slice(s): use backend=auto"
            )
        log.info(
            "%s: %s propagation, %d slice(s): the torch sweep (the numba kernels run "
            + covered
            + ")",
            owner,
            visit.name,
            visit.n_slices,
        )
    return visit
