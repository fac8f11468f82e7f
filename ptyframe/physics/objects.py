"""Parameterise the object: complex transmission or refractive index; support and shrink-wrap.

Two representations (Adorym supplement section B):

* complex transmission (supp. eq. S1): the unknown is ``O`` ``[S, Ny, Nx]`` complex itself;
* refractive index ``n = 1 - delta + i beta`` (supp. eq. S2, written in ptyframe's positive
  phase convention of ``ptyframe.physics.fft``): a slice of thickness ``dz`` transmits
  ``O = exp(-k beta dz) exp(-i k delta dz)``. The phase ``k delta dz`` is a continuous unknown,
  so it is unwrapped by construction; ``delta >= 0`` is enforced by projection
  (``nonnegative_delta``). With ``kappa`` set, ``beta = kappa * delta`` (the homogeneous-object
  relation of supp. section D.2, ``delta = beta / kappa``) and kappa may be refined.

Unknowns are described by ``Unknown`` records: the physical tensor (owned by the
``ReconstructionState``), the group that optimises it (object, probe, positions, geometry) and
a power-of-two ``scale``: the optimiser works on ``value / scale`` so that one learning rate
fits quantities of very different magnitude, and the round trip is exact in floating point.
``delta`` and ``beta`` are optimised in radians per slice (``scale = 2^round(log2(1/(k dz)))``).

Regularizers see two real fields of every object: the phase shift ``k delta dz`` and the
absorption ``k beta dz`` per slice (for a transmission: ``-arg O`` and ``-log |O|``).

Support (Marchesini et al., PRB 68, 140101 (2003); supp. section B): outside the boolean mask
``state.extras["support"]`` ``[Ny, Nx]`` the object is vacuum (delta = beta = 0), or for a
transmission the value ``support_fill`` (1: vacuum; 0: an isolated object, as in CDI).
Shrink-wrap replaces the mask by ``blur_sigma(|object contrast|) > threshold * max``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ptyframe.errors import ConfigError
from ptyframe.state import ReconstructionState, real_dtype

GROUPS: tuple[str, ...] = ("object", "probe", "positions", "geometry")


def pow2(x: float) -> float:
    """Return the power of two nearest to ``|x|`` (1.0 for 0 or non-finite ``x``)."""
    if not math.isfinite(x) or x == 0:
        return 1.0
    return float(2.0 ** round(math.log2(abs(x))))


@dataclass
class Unknown:
    """One named quantity of a forward model and how the engine may optimise it.

    ``value`` is the physical tensor (state-owned); the optimiser sees ``value / scale``.
    ``fixed`` marks a model input that is never refined. ``project`` is applied in place to
    the physical value after every optimiser step (a constraint: support, positivity, bounds).
    """

    group: str
    value: torch.Tensor
    scale: float = 1.0
    fixed: bool = False
    project: Callable[[torch.Tensor], None] | None = None

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"unknown group {self.group!r}; groups are {GROUPS}")


def support_of(state: ReconstructionState) -> torch.Tensor | None:
    """Return ``state.extras["support"]`` as bool ``[Ny, Nx]`` or None."""
    sup = state.extras.get("support")
    return None if sup is None else sup.to(torch.bool)


def gaussian_blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Blur the last two axes of real ``x`` ``[..., H, W]`` with a Gaussian (FFT, circular)."""
    if sigma_px <= 0:
        return x
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, dtype=torch.float64, device=x.device)
    fx = torch.fft.fftfreq(w, dtype=torch.float64, device=x.device)
    g = torch.exp(-2.0 * math.pi**2 * sigma_px**2 * (fy[:, None] ** 2 + fx[None, :] ** 2))
    return torch.fft.ifft2(torch.fft.fft2(x.to(torch.float64)) * g).real.to(x.dtype)


def shrink_wrap(contrast: torch.Tensor, sigma_px: float, threshold: float) -> torch.Tensor:
    """Return the new support ``blur(contrast) > threshold * max`` as bool ``[H, W]``.

    ``contrast`` is ``[..., H, W]`` real, non-negative; leading axes are summed first.
    """
    c = contrast.reshape(-1, *contrast.shape[-2:]).sum(0)
    b = gaussian_blur(c, sigma_px)
    return b > threshold * float(b.max())


@dataclass
class ObjectOptions:
    """The object-representation options every forward-model config carries (see module doc)."""

    unknown: str = "transmission"
    slice_thickness_m: float | None = None
    nonnegative_delta: bool = True
    kappa: float | None = None
    refine_kappa: bool = False
    support: bool = False
    support_fill: float = 1.0
    shrinkwrap_every: int = 0
    shrinkwrap_sigma_px: float = 1.0
    shrinkwrap_threshold: float = 0.1

    def check_object_options(self) -> None:
        """Raise ``ConfigError`` for an unknown representation or out-of-range options."""
        owner = getattr(self, "name", "physics")
        if self.unknown not in ("transmission", "refractive_index"):
            raise ConfigError(
                f"{owner}.unknown = {self.unknown!r}; use 'transmission' or 'refractive_index'"
            )
        if self.refine_kappa and self.kappa is None:
            raise ConfigError(f"{owner}.refine_kappa needs a starting {owner}.kappa (e.g. 0.1)")
        if self.kappa is not None and self.unknown != "refractive_index":
            raise ConfigError(f"{owner}.kappa needs {owner}.unknown=refractive_index")
        if self.shrinkwrap_every < 0 or not 0 <= self.shrinkwrap_threshold < 1:
            raise ConfigError(
                f"{owner}.shrinkwrap_every must be >= 0 and shrinkwrap_threshold in [0, 1)"
            )


class ObjectModel:
    """Map the object unknowns to slice transmissions ``[S, Ny, Nx]`` and back to the state."""

    def __init__(self, options: ObjectOptions, wavelength_m: float, thickness_m: float) -> None:
        options.check_object_options()
        self.options = options
        self.refractive = options.unknown == "refractive_index"
        self.k_dz = 2.0 * math.pi / wavelength_m * thickness_m

    # ------------------------------------------------------------------ state
    def init_state(self, state: ReconstructionState, n_slices: int) -> ReconstructionState:
        """Return ``state`` with ``n_slices`` vacuum slices (and delta/beta if refractive)."""
        obj = state.object
        if obj.shape[0] != n_slices:
            obj = obj[:1].expand(n_slices, *obj.shape[1:]).clone()
        extras = dict(state.extras)
        if self.refractive:
            rdt = real_dtype(obj.dtype)
            if "delta" not in extras or extras["delta"].shape != obj.shape:
                extras["delta"] = (-torch.angle(obj) / self.k_dz).to(rdt)
            if "beta" not in extras or extras["beta"].shape != obj.shape:
                mag = obj.abs().clamp(min=1e-30)
                extras["beta"] = (-torch.log(mag) / self.k_dz).to(rdt)
        if self.options.support and "support" not in extras:
            extras["support"] = torch.ones(obj.shape[-2:], dtype=torch.bool, device=obj.device)
        return ReconstructionState(obj, state.probe, state.positions_px, extras)

    def unknowns(self, state: ReconstructionState) -> dict[str, Unknown]:
        """Return the object unknowns (``object`` or ``delta``/``beta``, ``kappa``)."""
        sup = support_of(state)
        out: dict[str, Unknown] = {}
        if not self.refractive:
            fill = float(self.options.support_fill)
            proj = None if sup is None else _vacuum_outside(sup, fill)
            out["object"] = Unknown("object", state.object, 1.0, project=proj)
            return out
        scale = pow2(1.0 / self.k_dz)
        if "delta" not in state.extras:
            raise ConfigError("refractive-index object without state.extras['delta']")

        def project_delta(d: torch.Tensor) -> None:
            if self.options.nonnegative_delta:
                d.clamp_(min=0.0)
            if sup is not None:
                d.mul_(sup)

        out["delta"] = Unknown("object", state.extras["delta"], scale, project=project_delta)
        if self.options.kappa is None:
            proj = None if sup is None else _vacuum_outside(sup, 0.0)
            out["beta"] = Unknown("object", state.extras["beta"], scale, project=proj)
        else:
            kappa = state.extras.get("kappa")
            if kappa is None:
                kappa = torch.tensor(
                    float(self.options.kappa), dtype=torch.float64, device=state.object.device
                )
                state.extras["kappa"] = kappa
            out["kappa"] = Unknown(
                "geometry", kappa, pow2(float(kappa)), fixed=not self.options.refine_kappa
            )
        return out

    # ------------------------------------------------------------------ maths
    def fields(self, v: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (phase shift ``k delta dz``, absorption ``k beta dz``) per slice, real."""
        if not self.refractive:
            o = v["object"]
            return -torch.angle(o), -torch.log(o.abs().clamp(min=1e-12))
        d, b = self._delta_beta(v)
        return d * self.k_dz, b * self.k_dz

    def _delta_beta(self, v: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        d = v["delta"]
        b = v["beta"] if "beta" in v else v["kappa"].to(d.dtype) * d
        return d, b

    def transmission(self, v: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return slice transmissions ``[S, Ny, Nx]`` complex (supp. eqs. S1, S2)."""
        if not self.refractive:
            return v["object"]
        d, b = self._delta_beta(v)
        return refractive_transmission(d, b, self.k_dz)

    def store(self, v: dict[str, torch.Tensor], state: ReconstructionState) -> None:
        """Write the derived transmission into ``state.object`` (refractive representation)."""
        if self.refractive:
            with torch.no_grad():
                t = self.transmission(v)
                if t.shape == state.object.shape:
                    state.object.copy_(t.to(state.object.dtype))

    def contrast(self, v: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return the non-negative object contrast ``[S, Ny, Nx]`` used by shrink-wrap."""
        if not self.refractive:
            return (v["object"] - 1.0).abs()
        d, b = self._delta_beta(v)
        return torch.sqrt(d.square() + b.square())

    def update_support(self, v: dict[str, torch.Tensor], state: ReconstructionState) -> bool:
        """Shrink-wrap ``state.extras['support']`` in place; return whether it was done."""
        sup = state.extras.get("support")
        if sup is None:
            return False
        o = self.options
        new = shrink_wrap(self.contrast(v).detach(), o.shrinkwrap_sigma_px, o.shrinkwrap_threshold)
        sup.copy_(new.to(sup.dtype))
        return True


def refractive_transmission(delta: torch.Tensor, beta: torch.Tensor, k_dz: float) -> torch.Tensor:
    """Return ``exp(-k beta dz) exp(-i k delta dz)`` (supp. eq. S2, positive convention)."""
    cdt = torch.complex128 if delta.dtype == torch.float64 else torch.complex64
    return torch.exp(torch.complex(-k_dz * beta, -k_dz * delta)).to(cdt)


def _vacuum_outside(support: torch.Tensor, vacuum: float) -> Callable[[torch.Tensor], None]:
    def project(x: torch.Tensor) -> None:
        x[..., ~support] = vacuum  # the mask is read at call time: shrink-wrap updates it

    return project
