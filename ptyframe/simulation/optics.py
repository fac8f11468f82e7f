"""Make the beam an X-ray optic delivers: a Fresnel zone plate or a KB mirror pair (slits).

Shared by the simulation's probes (``ptyframe.simulation.probes``) and the starting guesses
(``init.probe=zone_plate|kb``, ``ptyframe.initial``). Units are SI; every field is complex128
``[M, N]`` centred at ``[M // 2, N // 2]`` (``ptyframe.physics.fft``), unnormalised.

Pupils. An optic of focal length ``f`` passes the spatial frequencies ``nu = rho / (lambda f)``
of the rays that cross its aperture at ``rho``: a zone plate of diameter ``D`` with a central
stop ``s`` passes the annulus ``s / (2 lambda f) <= |nu| <= D / (2 lambda f)``, a KB pair (or a
pair of slits in front of a focusing optic) of apertures ``(a_y, a_x)`` and focal lengths
``(f_y, f_x)`` the rectangle ``|nu_y| <= a_y / (2 lambda f_y)``, ``|nu_x| <= a_x / (2 lambda
f_x)``. A zone plate's focal length follows from its outermost zone ``dr``:
``f = D dr / lambda`` (Attwood, *Soft X-rays and Extreme Ultraviolet Radiation*, ch. 9), its
numerical aperture is ``NA = D / (2 f) = lambda / (2 dr)`` and its focus is the Airy pattern
whose first zero lies at ``1.22 dr`` (the Rayleigh resolution). Pupil edges are smoothed over
``edge_px`` pixels (raised cosine) to keep the sampled pupil band limited.

Two ways to reach the sample plane, ``z`` metres downstream of the focus (``z < 0``:
upstream), with ``H_z(nu) = exp(-i pi lambda z |nu|^2)`` the paraxial transfer function of
``ptyframe.physics.propagators``:

``focused_field`` (with the wavefront's curvature; far field, plane-wave near field)::

    P(x) = F^-1 [ pupil(nu) H_z(nu) ]

It needs the pupil inside the window's band (``NA / lambda <= 1 / (2 dx)``: in the far field the
bright-field disc fits on the detector) and the defocused beam inside the window
(``2 |z| NA <= M dx``).

``scaled_field`` (the curvature removed: the illumination of a cone-beam near-field scan in the
frame of the Fresnel scaling theorem, ``ptyframe.data.conebeam``). Completing the square in the
integral above gives ``P(x) = exp(i pi |x|^2 / (lambda z)) Q(x)`` with::

    Q = F^-1 [ F[a] H_{-z} ],    a(x) = pupil(x / (lambda z))

``a`` is the optic's geometric shadow at the sample (a disc of radius ``|z| NA``, the stop's
shadow inside it; a rectangle for KB mirrors) and ``H_{-z}`` adds its edge fringes. The
spherical factor is what the scaling theorem absorbs, so ``Q`` is the probe of the scaled
geometry. It needs the chirp of ``H_{-z}`` sampled, ``lambda |z| <= min(M, N) dx^2``; a shadow
larger than the window fills it (a flat field).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ptyframe.errors import ConfigError

#: ``pupil(nu_y [M, 1], nu_x [1, N]) -> [M, N]`` real in [0, 1]; frequencies in cycles/m.
Pupil = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _edge(t: np.ndarray) -> np.ndarray:
    """Return 1 for ``t <= -1/2``, 0 for ``t >= 1/2``, a raised cosine between."""
    return 0.5 * (1.0 + np.cos(math.pi * np.clip(t + 0.5, 0.0, 1.0)))


@dataclass(frozen=True)
class ZonePlate:
    """A Fresnel zone plate: diameter, outer zone width or focal length, central stop."""

    diameter_m: float
    wavelength_m: float
    outer_zone_m: float | None = None
    focal_length_m: float | None = None
    central_stop_m: float = 0.0

    def __post_init__(self) -> None:
        if (self.outer_zone_m is None) == (self.focal_length_m is None):
            raise ConfigError(
                "a zone plate needs exactly one of outer_zone_m and focal_length_m "
                f"(got {self.outer_zone_m} and {self.focal_length_m}); f = D dr / lambda"
            )
        for name in ("diameter_m", "wavelength_m", "outer_zone_m", "focal_length_m"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ConfigError(f"zone plate {name} = {v} must be a positive length in metres")
        if not 0.0 <= self.central_stop_m < self.diameter_m:
            raise ConfigError(
                f"zone plate central_stop_m = {self.central_stop_m} must lie in "
                f"[0, diameter_m = {self.diameter_m})"
            )

    @property
    def focal_length(self) -> float:
        """Return ``f`` (given, or ``D dr / lambda``)."""
        if self.focal_length_m is not None:
            return float(self.focal_length_m)
        return self.diameter_m * float(self.outer_zone_m) / self.wavelength_m  # type: ignore[arg-type]

    @property
    def outer_zone(self) -> float:
        """Return ``dr = lambda f / D``."""
        return self.wavelength_m * self.focal_length / self.diameter_m

    @property
    def numerical_aperture(self) -> float:
        """Return ``NA = D / (2 f)`` (half-angle of the cone, paraxial)."""
        return self.diameter_m / (2.0 * self.focal_length)

    @property
    def half_widths_m(self) -> tuple[float, float]:
        """Return the half-width of the focusing cone per axis, ``(NA, NA)``."""
        return (self.numerical_aperture, self.numerical_aperture)

    def pupil(self, edge_m: float) -> Pupil:
        """Return the annular pupil, edges soft over ``edge_m`` metres of the aperture."""
        lf = self.wavelength_m * self.focal_length
        outer, inner = self.diameter_m / 2.0, self.central_stop_m / 2.0

        def p(nu_y: np.ndarray, nu_x: np.ndarray) -> np.ndarray:
            rho = np.hypot(nu_y, nu_x) * lf  # radius on the optic
            w = max(edge_m, 1e-30)
            out = _edge((rho - outer) / w)
            if inner > 0:
                out = out * (1.0 - _edge((rho - inner) / w))
            return out

        return p


@dataclass(frozen=True)
class KBMirrors:
    """A KB mirror pair (or slits before a focusing optic): apertures and focal lengths."""

    aperture_m: tuple[float, float]
    focal_length_m: tuple[float, float]
    wavelength_m: float

    def __post_init__(self) -> None:
        for name in ("aperture_m", "focal_length_m"):
            v = getattr(self, name)
            if len(v) != 2 or not all(math.isfinite(x) and x > 0 for x in v):
                raise ConfigError(
                    f"KB {name} = {list(v)} must be two positive lengths (vertical, horizontal) "
                    "in metres"
                )

    @property
    def half_widths_m(self) -> tuple[float, float]:
        """Return the half-angle of the cone per axis, ``a / (2 f)``."""
        return (
            self.aperture_m[0] / (2.0 * self.focal_length_m[0]),
            self.aperture_m[1] / (2.0 * self.focal_length_m[1]),
        )

    def pupil(self, edge_m: float) -> Pupil:
        """Return the rectangular pupil, edges soft over ``edge_m`` metres of the aperture."""
        (ay, ax), (fy, fx), lam = self.aperture_m, self.focal_length_m, self.wavelength_m

        def p(nu_y: np.ndarray, nu_x: np.ndarray) -> np.ndarray:
            w = max(edge_m, 1e-30)
            py = _edge((np.abs(nu_y) * lam * fy - ay / 2.0) / w)
            px = _edge((np.abs(nu_x) * lam * fx - ax / 2.0) / w)
            return py * px

        return p


Optic = ZonePlate | KBMirrors


def _frequencies(shape: tuple[int, int], pixel_size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Return centred frequency axes ``(nu_y [M, 1], nu_x [1, N])`` in cycles per metre."""
    m, n = shape
    ny = (np.arange(m) - m // 2) / (m * pixel_size_m)
    nx = (np.arange(n) - n // 2) / (n * pixel_size_m)
    return ny[:, None], nx[None, :]


def _positions(shape: tuple[int, int], pixel_size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Return centred coordinates ``(y [M, 1], x [1, N])`` in metres, zero at ``M // 2``."""
    m, n = shape
    return (
        ((np.arange(m) - m // 2) * pixel_size_m)[:, None],
        ((np.arange(n) - n // 2) * pixel_size_m)[None, :],
    )


def _centred_ifft(spectrum_centred: np.ndarray) -> np.ndarray:
    field = np.fft.ifft2(np.fft.ifftshift(spectrum_centred), norm="ortho")
    return np.fft.fftshift(field)


def _centred_fft(field_centred: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(field_centred), norm="ortho"))


def focused_field(
    optic: Optic,
    shape: tuple[int, int],
    pixel_size_m: float,
    defocus_m: float,
    edge_px: float = 1.0,
) -> np.ndarray:
    """Return ``F^-1[pupil H_z]`` ``[M, N]`` complex128: the beam with its curvature."""
    lam = optic.wavelength_m
    hy, hx = optic.half_widths_m
    band = 0.5 / pixel_size_m
    if max(hy, hx) / lam > band * (1 + 1e-9):
        raise ConfigError(
            f"the optic's cone (NA {max(hy, hx):.3g}) does not fit a {pixel_size_m:.3g} m pixel "
            f"(it carries NA <= lambda / (2 dx) = {lam * band:.3g}): the focus is finer than the "
            "pixel; in the far field the bright-field disc would overfill the detector. For a "
            "cone-beam near-field scan give data.focus_to_sample_m (the beam is then taken "
            "without its curvature)"
        )
    width = (shape[0] * pixel_size_m, shape[1] * pixel_size_m)
    beam = (2 * abs(defocus_m) * hy, 2 * abs(defocus_m) * hx)
    if beam[0] > width[0] or beam[1] > width[1]:
        raise ConfigError(
            f"at defocus {defocus_m:.3g} m the beam is {beam[0]:.3g} x {beam[1]:.3g} m, larger "
            f"than the {width[0]:.3g} x {width[1]:.3g} m window (it would wrap round); reduce "
            "the defocus or enlarge the window"
        )
    nu_y, nu_x = _frequencies(shape, pixel_size_m)
    edge_m = edge_px * lam * _focal(optic) / (shape[0] * pixel_size_m)
    pupil = optic.pupil(edge_m)(nu_y, nu_x)
    chirp = np.exp(-1j * math.pi * lam * defocus_m * (nu_y**2 + nu_x**2))
    return _centred_ifft(pupil * chirp).astype(np.complex128)


def scaled_field(
    optic: Optic,
    shape: tuple[int, int],
    pixel_size_m: float,
    defocus_m: float,
    edge_px: float = 1.0,
) -> np.ndarray:
    """Return ``Q = F^-1[F[a] H_{-z}]`` ``[M, N]``: the beam without its curvature (docstring)."""
    lam = optic.wavelength_m
    z = float(defocus_m)
    if z == 0:
        raise ConfigError(
            "a beam without its curvature needs the sample away from the focus: set the "
            "defocus (data.focus_to_sample_m for a cone-beam scan)"
        )
    if lam * abs(z) > min(shape) * pixel_size_m**2:
        raise ConfigError(
            f"the shadow's edge fringes over {abs(z):.3g} m are undersampled by a "
            f"{pixel_size_m:.3g} m pixel in a {min(shape)} px window (lambda z = "
            f"{lam * abs(z):.3g} m^2 > M dx^2 = {min(shape) * pixel_size_m**2:.3g} m^2); "
            "enlarge the window"
        )
    y, x = _positions(shape, pixel_size_m)
    edge_m = edge_px * pixel_size_m * _focal(optic) / abs(z)  # edge_px pixels of the shadow
    shadow = optic.pupil(edge_m)(y / (lam * abs(z)), x / (lam * abs(z)))
    nu_y, nu_x = _frequencies(shape, pixel_size_m)
    back = np.exp(1j * math.pi * lam * z * (nu_y**2 + nu_x**2))
    return _centred_ifft(_centred_fft(shadow.astype(np.complex128)) * back)


def _focal(optic: Optic) -> float:
    if isinstance(optic, ZonePlate):
        return optic.focal_length
    return float(min(optic.focal_length_m))


def first_zero_radius_m(field: np.ndarray, pixel_size_m: float) -> float:
    """Return the radius of the first minimum of the azimuthal mean of ``|field|^2``.

    Bins of one pixel about the intensity peak; the minimum is refined by a parabola through
    the smallest bin and its neighbours.
    """
    inten = np.abs(field) ** 2
    cy, cx = np.unravel_index(int(np.argmax(inten)), inten.shape)
    yy, xx = np.indices(inten.shape)
    r = np.hypot(yy - cy, xx - cx)
    k = np.round(r).astype(int)
    prof = np.bincount(k.ravel(), inten.ravel()) / np.maximum(np.bincount(k.ravel()), 1)
    i = 1
    while i + 1 < prof.size and not (prof[i] <= prof[i - 1] and prof[i] <= prof[i + 1]):
        i += 1
    a, b, c = prof[i - 1], prof[i], prof[i + 1] if i + 1 < prof.size else prof[i]
    denom = a - 2 * b + c
    off = 0.5 * (a - c) / denom if denom > 0 else 0.0
    return float((i + off) * pixel_size_m)


# ---------------------------------------------------------------------------- components
@dataclass
class OpticsOptions:
    """The optic and where the sample sits; the fields of one optic are used, the rest ignored.

    Zone plate: ``diameter_m``, one of ``outer_zone_m`` / ``focal_length_m``,
    ``central_stop_m``. KB mirrors (or slits): ``aperture_m`` and ``focal_lengths_m``, each
    (vertical, horizontal). ``defocus_m``: the sample's distance downstream of the focus
    (negative: upstream). ``curvature``: keep the wavefront's curvature (far field, plane-wave
    near field) or drop it (a cone-beam near-field scan in the Fresnel-scaled frame).
    """

    diameter_m: float | None = None
    outer_zone_m: float | None = None
    focal_length_m: float | None = None
    central_stop_m: float = 0.0
    aperture_m: list[float] | None = None
    focal_lengths_m: list[float] | None = None
    defocus_m: float | None = None
    curvature: bool = True
    edge_px: float = 1.0

    def optic(self, kind: str, wavelength_m: float) -> Optic:
        """Return the ``zone_plate`` or ``kb`` optic these options describe."""
        if kind == "zone_plate":
            if self.diameter_m is None:
                raise ConfigError(
                    "a zone-plate probe needs its diameter: set diameter_m and outer_zone_m "
                    "(or focal_length_m), e.g. diameter_m=150e-6 outer_zone_m=50e-9"
                )
            return ZonePlate(
                float(self.diameter_m),
                wavelength_m,
                None if self.outer_zone_m is None else float(self.outer_zone_m),
                None if self.focal_length_m is None else float(self.focal_length_m),
                float(self.central_stop_m),
            )
        if kind == "kb":
            if self.aperture_m is None or self.focal_lengths_m is None:
                raise ConfigError(
                    "a KB probe needs aperture_m=[vertical, horizontal] and "
                    "focal_lengths_m=[vertical, horizontal] in metres"
                )
            return KBMirrors(
                tuple(float(a) for a in self.aperture_m),  # type: ignore[arg-type]
                tuple(float(f) for f in self.focal_lengths_m),  # type: ignore[arg-type]
                wavelength_m,
            )
        raise ConfigError(f"unknown optic {kind!r}; choose zone_plate or kb")

    def field(
        self,
        kind: str,
        shape: tuple[int, int],
        pixel_size_m: float,
        wavelength_m: float,
        defocus_m: float | None = None,
    ) -> np.ndarray:
        """Return the beam ``[M, N]`` at ``defocus_m`` (default: the options' own, else 0)."""
        if self.edge_px < 0:
            raise ConfigError(f"edge_px = {self.edge_px} must be >= 0")
        optic = self.optic(kind, wavelength_m)
        z = defocus_m if defocus_m is not None else (self.defocus_m or 0.0)
        make = focused_field if self.curvature else scaled_field
        return make(optic, shape, pixel_size_m, float(z), float(self.edge_px))


@dataclass
class ZonePlateProbeConfig(OpticsOptions):
    """A simulated probe from a Fresnel zone plate (``ptyframe.simulation.optics``)."""

    name: str = "zone_plate"
    diameter_m: float | None = 150e-6
    outer_zone_m: float | None = 50e-9


@dataclass
class KBProbeConfig(OpticsOptions):
    """A simulated probe from a KB mirror pair or slits (``ptyframe.simulation.optics``)."""

    name: str = "kb"
    aperture_m: list[float] | None = None
    focal_lengths_m: list[float] | None = None


class OpticsProbe:
    """A simulation probe (``generate``) from ``ZonePlateProbeConfig`` or ``KBProbeConfig``."""

    def __init__(self, config: ZonePlateProbeConfig | KBProbeConfig) -> None:
        self.config = config

    def generate(self, window_px: int, pixel_size_m: float, wavelength_m: float) -> np.ndarray:
        """Return the probe ``[M, M]`` complex128 at the configured defocus."""
        m = int(window_px)
        return self.config.field(self.config.name, (m, m), pixel_size_m, wavelength_m)
