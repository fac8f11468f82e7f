"""Generate illumination functions (probes) for simulated ptychography.

Every probe is built from its config dataclass and has
``generate(window_px: int, pixel_size_m: float, wavelength_m: float) -> np.ndarray``
returning a complex128 ``[M, M]`` probe centred at pixel ``[M // 2, M // 2]`` (the
convention of ``ptyframe.physics.fft``), unnormalised: the simulator scales it to the dose.

``focused``
    A zone plate / KB-mirror beam: a circular pupil of diameter ``D = pupil_diameter_frac M``
    pupil pixels (raised-cosine edge ``pupil_edge_px`` wide), multiplied by the Fresnel
    defocus transfer function and transformed to the sample plane::

        P(r) = F^-1[ A(q) exp(-i pi lambda z |f_q|^2) ],   f_q = q / (M dx)

    (paraxial angular spectrum for the positive convention ``exp(+i k z)``; ``z = defocus_m``,
    positive when the sample sits downstream of the focus). The geometric beam diameter in
    sample pixels is ``d = lambda |z| D / (M dx^2)``; when ``defocus_m`` is None, ``z`` is chosen
    so that ``d = beam_diameter_frac M``. ``d > M`` means the pupil chirp is undersampled
    (phase step > pi per pupil pixel) and the beam wraps around the window: a ConfigError.
    With the defaults (pupil 0.3 M, beam 0.42 M) the 90 %-power diameter is 41-48 % of the
    window (128 to 32 px) and ``|P|^2`` at the window border is < 5e-4 of its peak. A wider
    pupil gives more Fresnel rings (edge phase ~ pi d D / (4 M) rad), which a disk start
    recovers slowly.

``gaussian``
    ``|P|^2 = exp(-4 ln 2 r^2 / fwhm^2)`` (``fwhm_px``, default a quarter of the window), with
    an optional quadratic phase ``phase_curvature_rad (r / fwhm)^2``.

``disk``
    A flat disk of diameter ``diameter_px`` (default 0.4 M) with a raised-cosine edge
    ``edge_px`` wide centred on the nominal radius.

``probe_diameter_px`` measures the diameter of the circle about the intensity centre of mass
that holds a given fraction of the intensity; ``scans`` use it to turn an overlap ratio into
a step. ``incoherent_modes`` builds extra orthogonal modes for partial coherence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ptyframe.errors import ConfigError
from ptyframe.simulation.phantoms import require


def _grid(window_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Return centred pixel coordinates ``(y [M, 1], x [1, M])``, zero at ``M // 2``."""
    c = np.arange(window_px, dtype=np.float64) - window_px // 2
    return c[:, None], c[None, :]


def soft_disk(radius: np.ndarray, nominal: float, edge: float) -> np.ndarray:
    """Return 1 inside ``nominal - edge/2``, 0 outside ``nominal + edge/2``, a cosine between."""
    if edge <= 0:
        return (radius <= nominal).astype(np.float64)
    t = np.clip((radius - (nominal - edge / 2.0)) / edge, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(math.pi * t))


def check_window(window_px: int, pixel_size_m: float, wavelength_m: float) -> None:
    """Raise ``ConfigError`` for a non-positive window, pixel size or wavelength."""
    if int(window_px) < 2:
        raise ConfigError(f"probe window_px = {window_px} must be >= 2")
    if not pixel_size_m > 0 or not wavelength_m > 0:
        raise ConfigError(
            f"pixel_size_m = {pixel_size_m} and wavelength_m = {wavelength_m} must be > 0"
        )


# ---------------------------------------------------------------------------- focused
@dataclass
class FocusedProbeConfig:
    """Focused beam: circular pupil plus defocus, propagated to the sample plane."""

    name: str = "focused"
    pupil_diameter_frac: float = 0.3
    pupil_edge_px: float = 5.0
    defocus_m: float | None = None
    beam_diameter_frac: float = 0.42

    def __post_init__(self) -> None:
        require(self.name, "pupil_diameter_frac", self.pupil_diameter_frac, 0.0, 1.0, lo_open=True)
        require(self.name, "pupil_edge_px", self.pupil_edge_px, 0.0)
        require(self.name, "beam_diameter_frac", self.beam_diameter_frac, 0.0, 1.0)


class FocusedProbe:
    """Circular pupil with a defocus chirp; see the module docstring."""

    def __init__(self, config: FocusedProbeConfig) -> None:
        self.config = config

    def defocus(self, window_px: int, pixel_size_m: float, wavelength_m: float) -> float:
        """Return the defocus ``z`` in metres (configured, or derived from the beam diameter)."""
        c = self.config
        if c.defocus_m is not None:
            return float(c.defocus_m)
        d_pupil = c.pupil_diameter_frac * window_px
        return (
            c.beam_diameter_frac
            * window_px
            * window_px
            * pixel_size_m**2
            / (wavelength_m * d_pupil)
        )

    def generate(self, window_px: int, pixel_size_m: float, wavelength_m: float) -> np.ndarray:
        """Return the sample-plane probe ``[M, M]`` complex128, centred at ``M // 2``."""
        check_window(window_px, pixel_size_m, wavelength_m)
        c = self.config
        m = int(window_px)
        z = self.defocus(m, pixel_size_m, wavelength_m)
        d_pupil = c.pupil_diameter_frac * m
        beam_px = wavelength_m * abs(z) * d_pupil / (m * pixel_size_m**2)
        if beam_px > m:
            raise ConfigError(
                f"focused probe: defocus {z:.3g} m gives a {beam_px:.0f} px beam in a {m} px "
                "window (the pupil phase is undersampled and the beam wraps); reduce "
                "defocus_m or pupil_diameter_frac, or enlarge window_px"
            )
        qy, qx = _grid(m)
        q = np.hypot(qy, qx)
        pupil = soft_disk(q, d_pupil / 2.0, c.pupil_edge_px)
        f2 = (qy**2 + qx**2) / (m * pixel_size_m) ** 2
        spectrum = pupil * np.exp(-1j * math.pi * wavelength_m * z * f2)
        probe = np.fft.ifft2(np.fft.ifftshift(spectrum), norm="ortho")
        return np.fft.fftshift(probe).astype(np.complex128)


# ---------------------------------------------------------------------------- gaussian
@dataclass
class GaussianProbeConfig:
    """Gaussian beam of given intensity FWHM, optional quadratic phase."""

    name: str = "gaussian"
    fwhm_px: float | None = None
    phase_curvature_rad: float = 0.0

    def __post_init__(self) -> None:
        if self.fwhm_px is not None:
            require(self.name, "fwhm_px", self.fwhm_px, 0.0, lo_open=True)


class GaussianProbe:
    """Gaussian probe; see the module docstring."""

    def __init__(self, config: GaussianProbeConfig) -> None:
        self.config = config

    def generate(self, window_px: int, pixel_size_m: float, wavelength_m: float) -> np.ndarray:
        """Return the probe ``[M, M]`` complex128, centred at ``M // 2``."""
        check_window(window_px, pixel_size_m, wavelength_m)
        c = self.config
        fwhm = float(c.fwhm_px) if c.fwhm_px is not None else 0.25 * window_px
        y, x = _grid(int(window_px))
        r2 = (y**2 + x**2) / fwhm**2
        amp = np.exp(-2.0 * math.log(2.0) * r2)
        return amp * np.exp(1j * c.phase_curvature_rad * r2)


# ---------------------------------------------------------------------------- disk
@dataclass
class DiskProbeConfig:
    """Flat disk with a soft (raised-cosine) edge."""

    name: str = "disk"
    diameter_px: float | None = None
    edge_px: float = 2.0

    def __post_init__(self) -> None:
        if self.diameter_px is not None:
            require(self.name, "diameter_px", self.diameter_px, 0.0, lo_open=True)
        require(self.name, "edge_px", self.edge_px, 0.0)


class DiskProbe:
    """Soft-edged disk; see the module docstring."""

    def __init__(self, config: DiskProbeConfig) -> None:
        self.config = config

    def generate(self, window_px: int, pixel_size_m: float, wavelength_m: float) -> np.ndarray:
        """Return the probe ``[M, M]`` complex128, centred at ``M // 2``."""
        check_window(window_px, pixel_size_m, wavelength_m)
        c = self.config
        diameter = float(c.diameter_px) if c.diameter_px is not None else 0.4 * window_px
        y, x = _grid(int(window_px))
        return soft_disk(np.hypot(y, x), diameter / 2.0, c.edge_px).astype(np.complex128)


# ---------------------------------------------------------------------------- helpers
def probe_diameter_px(probe: np.ndarray, power_fraction: float = 0.9) -> float:
    """Return the diameter of the circle holding ``power_fraction`` of ``sum |P|^2``.

    ``probe`` is ``[M, M]`` or ``[K, M, M]`` (modes' intensities add). The circle is centred
    on the intensity centre of mass; pixel ``(i, j)`` sits at its centre ``(i, j)``. The
    radius is interpolated linearly in the cumulative power of pixels sorted by distance.
    """
    if not 0.0 < power_fraction <= 1.0:
        raise ConfigError(f"power_fraction = {power_fraction} must lie in (0, 1]")
    inten = np.abs(np.asarray(probe)) ** 2
    if inten.ndim == 3:
        inten = inten.sum(axis=0)
    total = float(inten.sum())
    if not total > 0:
        raise ConfigError("probe_diameter_px: the probe has no power")
    iy, ix = np.indices(inten.shape, dtype=np.float64)
    cy, cx = float((iy * inten).sum() / total), float((ix * inten).sum() / total)
    r = np.hypot(iy - cy, ix - cx).ravel()
    order = np.argsort(r, kind="stable")
    r_sorted = r[order]
    cum = np.cumsum(inten.ravel()[order]) / total
    k = int(np.searchsorted(cum, power_fraction))
    k = min(k, r_sorted.size - 1)
    if k == 0:
        return 2.0 * float(r_sorted[0])
    c0, c1 = cum[k - 1], cum[k]
    t = (power_fraction - c0) / (c1 - c0) if c1 > c0 else 1.0
    return 2.0 * float(r_sorted[k - 1] + t * (r_sorted[k] - r_sorted[k - 1]))


def incoherent_modes(probe: np.ndarray, n_modes: int, decay: float = 0.5) -> np.ndarray:
    """Return ``[K, M, M]`` mutually orthogonal modes, mode 0 the shape of ``probe``.

    Mode ``k >= 1`` starts as ``P0 * u^a v^b`` (``u, v`` the centred coordinates over the
    probe's rms radius; ``(a, b)`` by increasing degree, like Hermite-Gauss modes) and is
    Gram-Schmidt orthogonalised (twice) against the earlier ones in ``<A, B> = sum conj(A) B``.
    Powers: ``|P_k|^2`` sums to ``decay^k / sum_j decay^j`` of ``sum |P0|^2``, so the total
    power equals the input probe's (Thibault & Menzel, Nature 494, 68 (2013)).
    """
    p0 = np.asarray(probe, dtype=np.complex128)
    if n_modes < 1:
        raise ConfigError(f"probe_modes = {n_modes} must be >= 1")
    power = float(np.sum(np.abs(p0) ** 2))
    inten = np.abs(p0) ** 2
    iy, ix = np.indices(p0.shape, dtype=np.float64)
    cy, cx = (iy * inten).sum() / power, (ix * inten).sum() / power
    s = math.sqrt(float((((iy - cy) ** 2 + (ix - cx) ** 2) * inten).sum() / power)) or 1.0
    u, v = (iy - cy) / s, (ix - cx) / s
    basis = [p0 / math.sqrt(power)]
    degree = 1
    while len(basis) < n_modes:
        for a in range(degree, -1, -1):
            if len(basis) == n_modes:
                break
            cand = p0 * u**a * v ** (degree - a)
            for _ in range(2):
                for b in basis:
                    cand = cand - np.vdot(b, cand) * b
            norm = math.sqrt(float(np.sum(np.abs(cand) ** 2)))
            if norm > 1e-8 * math.sqrt(power):
                basis.append(cand / norm)
        degree += 1
        if degree > 2 * n_modes + 4:
            raise ConfigError(f"could not build {n_modes} independent probe modes")
    weights = decay ** np.arange(n_modes, dtype=np.float64)
    weights /= weights.sum()
    return np.stack([math.sqrt(power * w) * b for w, b in zip(weights, basis, strict=True)])
