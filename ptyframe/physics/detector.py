"""Carry exit waves to the detector and steps back: the propagator of the fast engines.

A fast engine's visit (PIE family, LSQML) forms exit waves ``psi`` ``[B, K, M', N']``, asks
``Psi = forward(psi)`` ``[B, K, M, N]``, builds the detector-plane step ``delta`` from the
measured moduli (``ptyframe.physics.projection.detector_delta``) and maps it back with
``chi = adjoint(delta)`` ``[B, K, M', N']``. Both are batched, torch, on the device and
dtype of their input; ``M' = M + 2 b`` with ``b`` the buffer zone of a near-field
propagator (``b = 0`` in the far field).

Detector order. ``forward`` returns its waves in the order in which
``ptyframe.data.measurements.Measurements`` holds the measured amplitudes: the stored frame
passed through ``ptyframe.physics.fft.from_centred``. For a far-field pattern that is FFT
order (zero frequency at ``[0, 0]``); for a near-field hologram (a real-space image stored as
recorded) it is the image rolled by ``-(M // 2, N // 2)``. The modulus constraint is
pixel-wise, so the order only has to agree with the data's.

Far field (``FarFieldPropagator``)::

    forward(psi) = F psi,   adjoint(Psi) = F^-1 Psi = F^H Psi       (unitary FFT, fft.py)

Near field (``NearFieldPropagator``), Fresnel transfer function over the distance ``d``
(Adorym supplement eq. S6 with the kernel ``H`` of eq. S7, or the angular spectrum of eq. S8;
kernels from ``ptyframe.physics.propagators``), on a window ``b`` pixels larger than the
detector on every side (the buffer zone of supp. section D: fringes that leave the detector
area spread into the buffer instead of wrapping round onto the opposite edge)::

    forward(psi)  = R C_b F^-1 [ H F psi ]                  [B, K, M + 2b, N + 2b] -> [B, K, M, N]
    adjoint(Psi)  = F^-1 [ conj(H) F C_b^T R^T Psi ]        (zero-padded back to the big window)

with ``C_b`` the crop to the central ``M x N``, ``C_b^T`` its zero padding and ``R`` the roll
to detector order. ``F^-1 H F`` is unitary, so with ``b = 0`` Parseval holds
(``||forward(psi)|| = ||psi||``) and ``adjoint`` is the inverse; with ``b > 0`` ``forward`` is
a contraction and ``adjoint`` its exact adjoint, which is also the exit-wave change that
replaces the detector window of ``P psi`` by the corrected waves and keeps its buffer: the
PIE exit-wave update ``psi' - psi = adjoint(Psi' - Psi)`` holds in both cases. With ``b = 0``
the roll ``R`` is folded into the kernel as the phase ramp ``exp(2 pi i (k_y (M//2) / M +
k_x (N//2) / N))`` (the Fourier shift theorem), so it costs nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ptyframe.errors import ConfigError
from ptyframe.physics import fft
from ptyframe.physics.propagators import angular_spectrum_transfer, fresnel_transfer

KERNELS = ("fresnel", "angular_spectrum")


class DetectorPropagator(Protocol):
    """What a fast engine calls to reach the detector and come back (module docstring)."""

    name: str
    near_field: bool
    #: ``(M', N')``: the exit-wave window (detector window plus the buffer on every side).
    exit_shape: tuple[int, int]
    #: ``(M, N)``: the measured frame.
    detector_shape: tuple[int, int]
    buffer_px: int

    def forward(self, psi: torch.Tensor) -> torch.Tensor:
        """Return detector waves ``[B, K, M, N]`` for exit waves ``[B, K, M', N']``."""

    def adjoint(self, delta: torch.Tensor) -> torch.Tensor:
        """Return the exit-plane change ``[B, K, M', N']`` of a detector step ``[B, K, M, N]``."""

    def describe(self) -> dict[str, Any]:
        """Return what the propagator assumes, for the result file's conventions."""


class FarFieldPropagator:
    """Fraunhofer propagation: the unitary FFT of ``ptyframe.physics.fft`` (module docstring)."""

    name = "farfield"
    near_field = False
    buffer_px = 0

    def __init__(self, detector_shape: tuple[int, int]) -> None:
        self.detector_shape = (int(detector_shape[0]), int(detector_shape[1]))
        self.exit_shape = self.detector_shape

    def forward(self, psi: torch.Tensor) -> torch.Tensor:
        """Return ``F psi`` ``[..., M, N]`` (FFT order)."""
        return fft.far_field(psi)

    def adjoint(self, delta: torch.Tensor) -> torch.Tensor:
        """Return ``F^H delta`` ``[..., M, N]``."""
        return fft.far_field_adjoint(delta)

    def describe(self) -> dict[str, Any]:
        """Return the far-field conventions."""
        return {"propagator": "farfield", "transform": "unitary FFT, detector in FFT order"}


def detector_roll_ramp(shape: tuple[int, int], device: torch.device | str | None) -> torch.Tensor:
    """Return the spectrum factor ``[M, N]`` complex128 that rolls a field to detector order.

    ``ifft2(fft2(x) * ramp) == fft.from_centred(x)`` for ``x`` ``[..., M, N]``: ``from_centred``
    moves pixel ``i + M // 2`` to ``i``, i.e. ``x(r + s)`` with ``s = (M // 2, N // 2)``, whose
    spectrum is ``X(k) exp(+2 pi i k.s)`` (``ptyframe.physics.fft``'s shift convention).
    """
    m, n = shape
    ky = fft.frequencies(m, device) * (m // 2)
    kx = fft.frequencies(n, device) * (n // 2)
    phase = 2.0 * math.pi * (ky[:, None] + kx[None, :])
    return torch.polar(torch.ones_like(phase), phase)


class NearFieldPropagator:
    """Fresnel (or angular-spectrum) propagation with a buffer zone (module docstring).

    ``detector_shape`` ``(M, N)`` is the measured frame, ``pixel_size_m`` the object-plane
    pixel (``p / M_geo`` for a cone beam), ``distance_m`` the (effective) propagation
    distance, ``buffer_px`` ``b >= 0`` the buffer on every side.
    """

    name = "nearfield"
    near_field = True

    def __init__(
        self,
        detector_shape: tuple[int, int],
        pixel_size_m: float,
        wavelength_m: float,
        distance_m: float,
        buffer_px: int = 0,
        kernel: str = "fresnel",
        dtype: torch.dtype = torch.complex64,
        device: torch.device | str = "cpu",
    ) -> None:
        if kernel not in KERNELS:
            raise ConfigError(f"near-field kernel {kernel!r} is unknown; choose one of {KERNELS}")
        if not (pixel_size_m > 0 and wavelength_m > 0 and math.isfinite(distance_m)):
            raise ConfigError(
                f"near field needs a pixel > 0 m, a wavelength > 0 m and a finite distance "
                f"(got {pixel_size_m}, {wavelength_m}, {distance_m})"
            )
        if int(buffer_px) < 0:
            raise ConfigError(f"buffer_px = {buffer_px} must be >= 0")
        self.detector_shape = (int(detector_shape[0]), int(detector_shape[1]))
        self.buffer_px = int(buffer_px)
        b = self.buffer_px
        self.exit_shape = (self.detector_shape[0] + 2 * b, self.detector_shape[1] + 2 * b)
        self.pixel_size_m = float(pixel_size_m)
        self.wavelength_m = float(wavelength_m)
        self.distance_m = float(distance_m)
        self.kernel_name = kernel
        make = fresnel_transfer if kernel == "fresnel" else angular_spectrum_transfer
        h = make(self.exit_shape, self.pixel_size_m, self.wavelength_m, self.distance_m, device)
        if b == 0:
            h = h * detector_roll_ramp(self.exit_shape, device)
        self.kernel = h.to(dtype)
        self.kernel_conj = h.conj().to(dtype)

    @property
    def fresnel_number(self) -> float:
        """Return the Fresnel number of one pixel, ``dx^2 / (lambda d)``."""
        return self.pixel_size_m**2 / (self.wavelength_m * abs(self.distance_m))

    def forward(self, psi: torch.Tensor) -> torch.Tensor:
        """Return ``R C_b F^-1 [H F psi]`` ``[..., M, N]`` for ``psi`` ``[..., M', N']``."""
        if self.buffer_px == 0:
            self._check(psi, self.exit_shape, "exit waves")
            return torch.fft.ifft2(torch.fft.fft2(psi) * self.kernel)
        return fft.from_centred(self.forward_image(psi))

    def adjoint(self, delta: torch.Tensor) -> torch.Tensor:
        """Return ``F^-1 [conj(H) F C_b^T R^T delta]`` ``[..., M', N']``."""
        if self.buffer_px == 0:
            self._check(delta, self.detector_shape, "detector waves")
            return torch.fft.ifft2(torch.fft.fft2(delta) * self.kernel_conj)
        return self.adjoint_image(fft.to_centred(delta))

    def forward_image(self, psi: torch.Tensor) -> torch.Tensor:
        """Return ``C_b F^-1 [H F psi]`` (``b > 0``): the detector window as the image is
        stored, without the roll ``R`` (a view of the propagated window).

        A sweep that rolls its measured row to the stored order instead
        (``fft.to_centred``) saves rolling the complex waves both ways.
        """
        self._check(psi, self.exit_shape, "exit waves")
        b = self.buffer_px
        assert b > 0, "the image order is for a propagator with a buffer zone"
        m, n = self.detector_shape
        wave = torch.fft.ifft2(torch.fft.fft2(psi).mul_(self.kernel))
        return wave[..., b : b + m, b : b + n]

    def adjoint_image(self, delta: torch.Tensor) -> torch.Tensor:
        """Return ``F^-1 [conj(H) F C_b^T delta]``: the adjoint of ``forward_image``."""
        self._check(delta, self.detector_shape, "detector waves")
        b = self.buffer_px
        m, n = self.detector_shape
        big = delta.new_zeros((*delta.shape[:-2], *self.exit_shape))
        big[..., b : b + m, b : b + n] = delta
        return torch.fft.ifft2(torch.fft.fft2(big).mul_(self.kernel_conj))

    def describe(self) -> dict[str, Any]:
        """Return the near-field conventions (distance, pixel, buffer, kernel)."""
        return {
            "propagator": "nearfield",
            "kernel": self.kernel_name,
            "distance_m": self.distance_m,
            "pixel_size_m": self.pixel_size_m,
            "wavelength_m": self.wavelength_m,
            "buffer_px": self.buffer_px,
            "fresnel_number_per_pixel": self.fresnel_number,
            "detector_order": "stored frame through fft.from_centred",
        }

    @staticmethod
    def _check(x: torch.Tensor, shape: tuple[int, int], what: str) -> None:
        if tuple(x.shape[-2:]) != shape:
            raise ValueError(f"{what} are {tuple(x.shape)}; the last two axes must be {shape}")


def fringe_reach_px(pixel_size_m: float, wavelength_m: float, distance_m: float) -> float:
    """Return how far the highest frequency of the window travels, ``lambda d / (2 dx^2)`` px.

    A feature at the Nyquist frequency ``1 / (2 dx)`` diffracts at the angle ``lambda / (2 dx)``
    and moves ``lambda d / (2 dx)`` metres over the distance ``d``: the buffer that keeps every
    fringe of the detector area from wrapping round.
    """
    return wavelength_m * abs(distance_m) / (2.0 * pixel_size_m**2)


def short_buffer_message(
    name: str, buffer_px: int, pixel_size_m: float, wavelength_m: float, distance_m: float
) -> str | None:
    """Return a warning when a near-field buffer of ``buffer_px`` is shorter than the fringe
    reach (``fringe_reach_px``) over ``distance_m`` (the detector distance plus the depth of
    the slices), else None.

    Past the buffer the circular propagator wraps the illumination and the finest fringes
    round the window; the model then cannot predict the recorded data, and the unknowns (the
    slices, the object) absorb the misfit without an error (docs/guide/near-field.md,
    "Buffer zones"). The advice is twice the reach, as the cone-beam preset takes.
    """
    reach = fringe_reach_px(pixel_size_m, wavelength_m, distance_m)
    if buffer_px >= reach:
        return None
    return (
        f"{name}.buffer_px = {buffer_px} is shorter than the {reach:.0f} px that the window's "
        f"finest fringes travel over {distance_m:.4g} m (the detector distance and the slices' "
        "depth): the illumination past the buffer wraps round the window and the "
        f"reconstruction absorbs the misfit; set {name}.buffer_px={2 * math.ceil(reach - 1e-6)} "
        "(twice the reach) unless the beam holds no detail that fine"
    )


@dataclass(frozen=True)
class PropagatorSpec:
    """Which propagator a run uses (built by ``build_detector_propagator``)."""

    near_field: bool = False
    distance_m: float | None = None
    buffer_px: int = 0
    kernel: str = "fresnel"


def build_detector_propagator(
    spec: PropagatorSpec,
    detector_shape: tuple[int, int],
    pixel_size_m: float,
    wavelength_m: float,
    dtype: torch.dtype = torch.complex64,
    device: torch.device | str = "cpu",
) -> FarFieldPropagator | NearFieldPropagator:
    """Return the far- or near-field propagator ``spec`` names for a frame of ``detector_shape``."""
    if not spec.near_field:
        if spec.buffer_px:
            raise ConfigError(
                "a buffer zone needs a near-field propagator: far-field patterns do not wrap "
                "around; set buffer_px=0"
            )
        return FarFieldPropagator(detector_shape)
    if spec.distance_m is None:
        raise ConfigError(
            "near-field propagation needs a distance: the data file gives none; set "
            "physics.free_prop_m=[D] (metres) or read a file with its detector distance"
        )
    return NearFieldPropagator(
        detector_shape,
        pixel_size_m,
        wavelength_m,
        float(spec.distance_m),
        spec.buffer_px,
        spec.kernel,
        dtype,
        device,
    )
