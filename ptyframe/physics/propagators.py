"""Propagate wavefields through free space: Fraunhofer, Fresnel (paraxial), angular spectrum.

Sign convention (the one ``ptyframe.physics.fft`` fixes): *positive phase convention*, a plane
wave evolves as ``exp(+i k z)``, the forward FFT has kernel ``exp(-2 pi i nu x)``. The Adorym
supplement (section C) writes its kernels in the negative convention; in ours they read

    Fraunhofer (supp. eq. S4-S5)        P_far[psi]   = F[psi]          (unitary, FFT order)
    Fresnel, paraxial (supp. eq. S7)     H_1(nu, d)   = exp(-i pi lambda d |nu|^2)
    angular spectrum (supp. eq. S8)      H_2(nu, d)   = exp(i k d (sqrt(1 - lambda^2 |nu|^2) - 1))
                                                       for lambda |nu| < 1, else 0 (evanescent cut)
    near field (supp. eq. S6)            P_d[psi]     = F^-1{ F[psi] H(nu, d) }

The carrier ``exp(i k d)`` is dropped from both near-field kernels: it is a global phase (it
changes no intensity) and keeping it would lose float32 precision (``k d ~ 1e7`` rad). Under
this convention a point source propagated by ``d > 0`` acquires the diverging phase
``+pi r^2 / (lambda d)``, and a lens ``exp(-i pi r^2 / (lambda f))`` focuses at ``d = +f``
(tests in ``tests/test_propagators.py``). ``nu`` are the FFT-order spatial frequencies in
cycles per metre, ``fftfreq(n, dx)``. Distances may be tensors with ``requires_grad`` (slice
positions, free-propagation distance, defocus are refinable); kernels are built in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ptyframe.errors import ConfigError
from ptyframe.physics import fft

if TYPE_CHECKING:
    from ptyframe.registry import BuildContext


def frequency_grid(
    shape: tuple[int, int], pixel_size_m: float, device: torch.device | str | None = None
) -> torch.Tensor:
    """Return ``|nu|^2`` ``[H, W]`` float64 in (cycles/m)^2, FFT order."""
    h, w = shape
    ny = torch.fft.fftfreq(h, d=pixel_size_m, dtype=torch.float64, device=device)
    nx = torch.fft.fftfreq(w, d=pixel_size_m, dtype=torch.float64, device=device)
    return ny[:, None].square() + nx[None, :].square()


def _distance(distance_m: torch.Tensor | float, device: torch.device | str | None) -> torch.Tensor:
    d = torch.as_tensor(distance_m, device=device)
    return d.to(torch.float64)


def fresnel_transfer(
    shape: tuple[int, int],
    pixel_size_m: float,
    wavelength_m: float,
    distance_m: torch.Tensor | float,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Return the paraxial kernel ``exp(-i pi lambda d |nu|^2)`` as ``[..., H, W]`` complex128.

    ``distance_m`` has any shape ``[...]`` (one kernel per distance); Adorym supp. eq. S7 in
    the positive phase convention.
    """
    nu2 = frequency_grid(shape, pixel_size_m, device)
    d = _distance(distance_m, device)
    phase = (-math.pi * wavelength_m) * d[..., None, None] * nu2
    return torch.polar(torch.ones_like(phase), phase)


def angular_spectrum_transfer(
    shape: tuple[int, int],
    pixel_size_m: float,
    wavelength_m: float,
    distance_m: torch.Tensor | float,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Return ``exp(i k d (sqrt(1 - lambda^2 nu^2) - 1))``, 0 where evanescent; ``[..., H, W]``.

    Adorym supp. eq. S8 (Sommerfeld-Rayleigh / angular spectrum) in the positive phase
    convention, carrier dropped. Frequencies with ``lambda |nu| >= 1`` are cut to zero.
    """
    nu2 = frequency_grid(shape, pixel_size_m, device)
    arg = 1.0 - wavelength_m**2 * nu2
    prop = arg > 0
    # sqrt(arg) - 1 written as -lambda^2 nu^2 / (1 + sqrt(arg)): no cancellation at small nu
    root = torch.sqrt(torch.clamp(arg, min=0.0))
    excess = -(wavelength_m**2) * nu2 / (1.0 + root)
    k = 2.0 * math.pi / wavelength_m
    d = _distance(distance_m, device)
    phase = k * d[..., None, None] * excess
    kernel = torch.polar(torch.ones_like(phase), phase)
    return kernel * prop.to(kernel.dtype)


def apply_transfer(wave: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Return ``F^-1{F[wave] H}`` (Adorym supp. eq. S6); ``kernel`` broadcasts on ``wave``."""
    spec = torch.fft.fft2(wave)
    return torch.fft.ifft2(spec * kernel.to(wave.dtype))


class Propagator:
    """Carry a wavefield ``[..., H, W]`` over a distance (a tensor, possibly refinable)."""

    #: ``True`` if the output is a real-space field of the same sampling (near field).
    near_field: bool = True

    def kernel(
        self,
        shape: tuple[int, int],
        pixel_size_m: float,
        wavelength_m: float,
        distance_m: torch.Tensor | float,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Return the transfer function ``[..., H, W]`` complex128 (FFT order)."""
        raise NotImplementedError

    def __call__(
        self,
        wave: torch.Tensor,
        distance_m: torch.Tensor | float,
        pixel_size_m: float,
        wavelength_m: float,
    ) -> torch.Tensor:
        """Propagate ``wave`` ``[..., H, W]``; ``distance_m`` broadcasts on the leading axes."""
        k = self.kernel(
            (wave.shape[-2], wave.shape[-1]), pixel_size_m, wavelength_m, distance_m, wave.device
        )
        return apply_transfer(wave, k)


class Fraunhofer(Propagator):
    """Far field: the unitary FFT of ``ptyframe.physics.fft`` (distance only scales pixels)."""

    near_field = False

    def __call__(
        self,
        wave: torch.Tensor,
        distance_m: torch.Tensor | float = 0.0,
        pixel_size_m: float = 1.0,
        wavelength_m: float = 1.0,
    ) -> torch.Tensor:
        """Return ``F[wave]`` in FFT order (Adorym supp. eq. S5)."""
        return fft.far_field(wave)


class Fresnel(Propagator):
    """Near field with the paraxial transfer function ``H_1`` (Adorym supp. eq. S7)."""

    def kernel(
        self,
        shape: tuple[int, int],
        pixel_size_m: float,
        wavelength_m: float,
        distance_m: torch.Tensor | float,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Return ``exp(-i pi lambda d |nu|^2)`` ``[..., H, W]``."""
        return fresnel_transfer(shape, pixel_size_m, wavelength_m, distance_m, device)


class AngularSpectrum(Propagator):
    """Near field with the angular-spectrum kernel ``H_2`` and the evanescent cut (eq. S8)."""

    def kernel(
        self,
        shape: tuple[int, int],
        pixel_size_m: float,
        wavelength_m: float,
        distance_m: torch.Tensor | float,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Return the angular-spectrum kernel ``[..., H, W]`` (evanescent part zero)."""
        return angular_spectrum_transfer(shape, pixel_size_m, wavelength_m, distance_m, device)


@dataclass
class FraunhoferConfig:
    """Fraunhofer (far-field) propagation: the unitary FFT."""

    name: str = "fraunhofer"


@dataclass
class FresnelConfig:
    """Fresnel propagation with the paraxial transfer function."""

    name: str = "fresnel"


@dataclass
class AngularSpectrumConfig:
    """Angular-spectrum (Sommerfeld-Rayleigh) propagation with the evanescent cut."""

    name: str = "angular_spectrum"


BUILTIN: dict[str, type[Propagator]] = {
    "fraunhofer": Fraunhofer,
    "fresnel": Fresnel,
    "angular_spectrum": AngularSpectrum,
}


def build_propagator(
    config: FraunhoferConfig | FresnelConfig | AngularSpectrumConfig,
) -> Propagator:
    """Build the built-in propagator that ``config.name`` names."""
    return BUILTIN[config.name]()


def make_propagator(name: str, context: BuildContext | None = None) -> Propagator:
    """Return the propagator called ``name``: from the registry if ``context`` has one."""
    if context is not None:
        prop = context.registry.build("propagator", name, context)
        if not isinstance(prop, Propagator):
            raise ConfigError(
                f"propagator {name!r} built a {type(prop).__name__}, not a "
                "ptyframe.physics.propagators.Propagator; fix its factory"
            )
        return prop
    if name not in BUILTIN:
        raise ConfigError(f"unknown propagator {name!r}; built-in ones are {', '.join(BUILTIN)}")
    return BUILTIN[name]()
