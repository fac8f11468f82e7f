"""Generate complex transmission functions (phantoms) for simulated ptychography.

Every phantom is built from its config dataclass and has
``generate(shape_px: tuple[int, int], rng: np.random.Generator) -> np.ndarray`` returning a
complex128 ``[Ny, Nx]`` transmission ``O``. The caller passes the random generator (no seed in
the configs), so one run seed reproduces the whole simulation.

Sign convention (``ptyframe.physics.fft``): ``n = 1 - delta + i beta``, a slice of thickness
``t`` transmits ``exp(-k beta t) exp(-i k delta t)``; material therefore has *negative*
phase and amplitude ``<= 1``. Writing ``phi = k delta t >= 0`` for the material's phase
magnitude, the transmission is ``exp(-(beta/delta) phi) exp(-i phi)``.

Phantoms:

``particles``
    Weak-phase spheres in a film, like the TiO2-in-PMMA specimen of the PINE paper
    (Yamada et al., J. Appl. Cryst. 2024, section 5; geometry from Yatabe & Takayama 2022).
    Spheres of random radius in ``[radius_min_px, radius_max_px]`` are placed at random
    without overlapping in projection (a candidate that overlaps is redrawn; after
    ``max_tries`` failures it is dropped). A sphere of radius ``R`` has projected thickness
    ``2 sqrt(R^2 - rho^2)``; its phase magnitude is ``max_phase_rad * t / (2 R_max)``, so the
    centre of the largest possible sphere reaches ``max_phase_rad``. A smooth film-thickness
    variation ``phi_f`` in ``[0, film_roughness_rad]`` (a ``1/f^2`` random field) adds to it::

        O = exp(-(beta/delta) (phi_p + phi_f)) * exp(i (film_phase_rad - phi_p - phi_f))

    Phase range: ``[film_phase_rad - max_phase_rad - film_roughness_rad, film_phase_rad]``
    (default ``[-0.4, 0]`` rad); amplitude in ``[exp(-(beta/delta)(max_phase + roughness)), 1]``
    (default ``[0.953, 1]``), matching the reference data (phase ~-0.4..0.1 rad, amplitude
    ~0.95..1.01, the PINE reference code's phantom) up to the constant phase offset.

``siemens_star``
    ``n_spokes`` opaque sectors (``sin(n theta) > 0``) inside a disk of radius
    ``radius_frac * min(Ny, Nx) / 2``; each spoke transmits ``amplitude * exp(i phase_rad)``.
    With ``smooth_edges`` the sector mask is area-averaged over 4x4 sub-pixels
    (anti-aliased edges), the mask ``m`` in ``[0, 1]`` entering as
    ``O = exp(m (ln amplitude + i phase_rad))``.

``natural``
    A smooth natural-like image generated procedurally: two independent Gaussian random fields
    with power spectrum ``|f|^-spectral_exponent`` (2 = the spectrum of natural scenes), low
    frequencies below ``1 / correlation_px`` flattened, each min-max scaled to ``[0, 1]``,
    mapped to amplitude ``[amplitude_min, amplitude_max]`` and phase
    ``[phase_min_rad, phase_max_rad]``. ``coupled`` uses one field for both (a single material).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ptyframe.errors import ConfigError


def require(
    owner: str,
    name: str,
    value: float,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    """Raise ``ConfigError`` unless ``lo <= value <= hi`` (open ends as asked; None = no bound)."""
    bad = value != value
    if lo is not None:
        bad |= value <= lo if lo_open else value < lo
    if hi is not None:
        bad |= value >= hi if hi_open else value > hi
    if bad:
        left = "-inf" if lo is None else f"{'(' if lo_open else '['}{lo}"
        right = "inf" if hi is None else f"{hi}{')' if hi_open else ']'}"
        raise ConfigError(
            f"{owner}.{name} = {value} is out of range; set it within {left}, {right}"
        )


def check_shape(shape_px: tuple[int, int]) -> tuple[int, int]:
    """Return ``shape_px`` as two ints, or raise ``ConfigError`` for a non-positive size."""
    ny, nx = (int(s) for s in shape_px)
    if ny <= 0 or nx <= 0:
        raise ConfigError(f"phantom shape {shape_px} must be positive (Ny, Nx)")
    return ny, nx


def power_law_field(
    shape_px: tuple[int, int],
    rng: np.random.Generator,
    exponent: float = 2.0,
    correlation_px: float = 0.0,
) -> np.ndarray:
    """Return a real ``[Ny, Nx]`` float64 random field with power spectrum ``|f|^-exponent``.

    White Gaussian noise is filtered by ``(|f|^2 + f_c^2)^(-exponent / 4)`` with
    ``f_c = 1 / correlation_px`` (or one cycle per image when 0) and min-max scaled to
    ``[0, 1]``. The field is periodic in the array.
    """
    ny, nx = shape_px
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    fc = 1.0 / correlation_px if correlation_px > 0 else 1.0 / max(ny, nx)
    filt = (fy**2 + fx**2 + fc**2) ** (-exponent / 4.0)
    filt[0, 0] = 0.0
    noise = rng.standard_normal((ny, nx))
    field = np.fft.ifft2(np.fft.fft2(noise) * filt).real
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / (hi - lo) if hi > lo else np.zeros_like(field)


# ---------------------------------------------------------------------------- particles
@dataclass
class ParticlesConfig:
    """Weak-phase spheres in a film (the PINE paper's TiO2-in-PMMA specimen)."""

    name: str = "particles"
    n_particles: int | None = None
    fill_fraction: float = 0.3
    radius_min_px: float = 2.0
    radius_max_px: float = 8.0
    max_phase_rad: float = 0.35
    beta_over_delta: float = 0.12
    film_phase_rad: float = 0.0
    film_roughness_rad: float = 0.05
    max_tries: int = 50

    def __post_init__(self) -> None:
        o = self.name
        if self.n_particles is not None:
            require(o, "n_particles", self.n_particles, 0)
        require(o, "fill_fraction", self.fill_fraction, 0.0, 0.9)
        require(o, "radius_min_px", self.radius_min_px, 0.0, lo_open=True)
        require(o, "radius_max_px", self.radius_max_px, self.radius_min_px)
        require(o, "max_phase_rad", self.max_phase_rad, 0.0)
        require(o, "beta_over_delta", self.beta_over_delta, 0.0)
        require(o, "film_roughness_rad", self.film_roughness_rad, 0.0)
        require(o, "max_tries", self.max_tries, 1)


class ParticlesPhantom:
    """Spheres of random radius in a film; see the module docstring for the model."""

    def __init__(self, config: ParticlesConfig) -> None:
        self.config = config

    def phase_depth(self, shape_px: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """Return the particles' phase magnitude ``phi_p >= 0`` as ``[Ny, Nx]`` float64."""
        c = self.config
        ny, nx = check_shape(shape_px)
        r_lo, r_hi = float(c.radius_min_px), float(c.radius_max_px)
        if c.n_particles is not None:
            n = int(c.n_particles)
        else:
            mean_r2 = (r_hi**3 - r_lo**3) / (3 * (r_hi - r_lo)) if r_hi > r_lo else r_lo**2
            n = int(round(c.fill_fraction * ny * nx / (math.pi * mean_r2)))
        depth = np.zeros((ny, nx))
        taken = np.zeros((ny, nx), dtype=bool)
        scale = c.max_phase_rad / (2.0 * r_hi)
        radii = rng.uniform(r_lo, r_hi, size=n)
        for radius in np.sort(radii)[::-1]:  # big ones first pack better
            for _ in range(int(c.max_tries)):
                cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
                y0, y1 = max(int(cy - radius), 0), min(int(cy + radius) + 2, ny)
                x0, x1 = max(int(cx - radius), 0), min(int(cx + radius) + 2, nx)
                if y1 <= y0 or x1 <= x0:
                    continue
                yy = np.arange(y0, y1)[:, None] + 0.5 - cy
                xx = np.arange(x0, x1)[None, :] + 0.5 - cx
                inside = yy**2 + xx**2 < radius**2
                if np.any(taken[y0:y1, x0:x1] & inside):
                    continue
                chord = 2.0 * np.sqrt(np.clip(radius**2 - yy**2 - xx**2, 0.0, None))
                depth[y0:y1, x0:x1] += scale * chord
                taken[y0:y1, x0:x1] |= inside
                break
        return depth

    def generate(self, shape_px: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """Return the transmission ``[Ny, Nx]`` complex128 (module docstring, particles)."""
        c = self.config
        shape = check_shape(shape_px)
        phi = self.phase_depth(shape, rng)
        if c.film_roughness_rad > 0:
            phi = phi + c.film_roughness_rad * power_law_field(shape, rng, 2.0, 0.0)
        return np.exp(-c.beta_over_delta * phi) * np.exp(1j * (c.film_phase_rad - phi))


# ---------------------------------------------------------------------------- Siemens star
@dataclass
class SiemensStarConfig:
    """A Siemens star: ``n_spokes`` sectors of given phase and amplitude."""

    name: str = "siemens_star"
    n_spokes: int = 36
    phase_rad: float = -0.8
    amplitude: float = 0.85
    radius_frac: float = 0.95
    smooth_edges: bool = True

    def __post_init__(self) -> None:
        require(self.name, "n_spokes", self.n_spokes, 1)
        require(self.name, "amplitude", self.amplitude, 0.0, lo_open=True)
        require(self.name, "radius_frac", self.radius_frac, 0.0, lo_open=True)


class SiemensStarPhantom:
    """Siemens star centred in the array; see the module docstring."""

    def __init__(self, config: SiemensStarConfig) -> None:
        self.config = config

    def mask(self, shape_px: tuple[int, int]) -> np.ndarray:
        """Return the spoke coverage ``m`` in ``[0, 1]`` as ``[Ny, Nx]`` float64."""
        c = self.config
        ny, nx = check_shape(shape_px)
        sub = 4 if c.smooth_edges else 1
        offs = (np.arange(sub) + 0.5) / sub
        ys = (np.arange(ny)[:, None] + offs[None, :]).reshape(-1) - ny / 2.0
        xs = (np.arange(nx)[:, None] + offs[None, :]).reshape(-1) - nx / 2.0
        yy, xx = ys[:, None], xs[None, :]
        radius = c.radius_frac * min(ny, nx) / 2.0
        theta = np.arctan2(yy, xx)
        on = (np.sin(int(c.n_spokes) * theta) > 0) & (yy**2 + xx**2 <= radius**2)
        return on.reshape(ny, sub, nx, sub).mean(axis=(1, 3))

    def generate(self, shape_px: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """Return the transmission ``[Ny, Nx]`` complex128 (``rng`` is unused)."""
        c = self.config
        m = self.mask(shape_px)
        return np.exp(m * (math.log(c.amplitude) + 1j * c.phase_rad))


# ---------------------------------------------------------------------------- natural
@dataclass
class NaturalConfig:
    """A smooth natural-like image: 1/f^2 random fields as amplitude and phase."""

    name: str = "natural"
    spectral_exponent: float = 2.0
    correlation_px: float = 0.0
    amplitude_min: float = 0.8
    amplitude_max: float = 1.0
    phase_min_rad: float = -0.6
    phase_max_rad: float = 0.0
    coupled: bool = False

    def __post_init__(self) -> None:
        o = self.name
        require(o, "spectral_exponent", self.spectral_exponent, 0.0)
        require(o, "correlation_px", self.correlation_px, 0.0)
        require(o, "amplitude_min", self.amplitude_min, 0.0)
        require(o, "amplitude_max", self.amplitude_max, self.amplitude_min)
        require(o, "phase_max_rad", self.phase_max_rad, self.phase_min_rad)


class NaturalPhantom:
    """Natural-like random fields; see the module docstring."""

    def __init__(self, config: NaturalConfig) -> None:
        self.config = config

    def generate(self, shape_px: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """Return the transmission ``[Ny, Nx]`` complex128."""
        c = self.config
        shape = check_shape(shape_px)
        a = power_law_field(shape, rng, c.spectral_exponent, c.correlation_px)
        p = a if c.coupled else power_law_field(shape, rng, c.spectral_exponent, c.correlation_px)
        amp = c.amplitude_min + (c.amplitude_max - c.amplitude_min) * a
        phase = c.phase_min_rad + (c.phase_max_rad - c.phase_min_rad) * p
        return amp * np.exp(1j * phase)
