"""Add the nuisances of a real experiment to a simulated scan: wrong positions, a drifting probe,
a fluctuating flux.

``simulation.nuisances.*`` (``NuisanceConfig``) of ``ptyframe simulate``; all zero (the
default) is the ideal experiment and leaves the simulation bit for bit as it was. Pattern
``j`` is taken at time ``t_j = j / (T - 1)`` (the scan's order is the acquisition order), and
the drifts follow a profile ``g(t_j)`` with zero mean over the scan:
``linear``: ``g = t - 1/2``; ``sine``: ``g = sin(2 pi t) / 2``.

Positions. The scan generator makes the TRUE positions ``p_j`` (where the beam hit); the
file records what a stage would report::

    r_j = c + A (p_j - c) + v g_lin(t_j) + e_j,     A = R(theta) H(s) (1 + sigma) I

with ``c`` the scan's centre, ``R(theta)`` the rotation by ``scan_rotation_deg`` (y, x axes),
``H(s) = [[1, s], [0, 1]]`` the shear ``scan_shear``, ``sigma = scan_scale`` the relative scale
error, ``v = (scan_drift_y_px, scan_drift_x_px)`` the linear drift over the whole scan
(``g_lin = t - 1/2``) and ``e_j ~ N(0, position_error_px^2)`` per axis. Both sets are moved
by one common offset so that every window lies in the object frame; the file keeps ``r_j``
in ``/metadata/probe_pos_px`` and ``p_j`` in ``/truth/positions_px``.

Probe. ``P_j = T_{s_j} D_{z_j} P`` with ``D_z`` the Fresnel (paraxial angular-spectrum)
propagation by ``z_j = probe_defocus_drift_m g(t_j)``::

    D_z P = F^-1[ F(P) exp(-i pi lambda z |f|^2) ]     (the convention of ``probes.focused``)

and ``T_s`` the Fourier shift by ``s_j = (probe_shift_y_px, probe_shift_x_px) g(t_j)``
(``ptyframe.physics.fft.fourier_shift``), applied to every incoherent mode. The file's
``/truth/probe`` is ``P`` (the probe at ``g = 0``); ``/truth/probe_defocus_m`` ``[T]`` and
``/truth/probe_shift_px`` ``[T, 2]`` hold the per-pattern parameters and ``probes_at``
rebuilds the per-pattern probes from them.

Flux. Pattern ``j`` is taken with ``f_j`` times the mean flux, ``f_j = 1 + flux_rms n_j``,
``n_j ~ N(0, 1)``, clipped to ``[0.05, inf)`` and divided by its mean (so the dose setting
holds on average); the noiseless intensities are multiplied by ``f_j`` before the noise.
``/truth/flux`` ``[T]`` keeps ``f_j`` (an intensity factor; the amplitude factor is
``sqrt(f_j)``).

The random draws come from the simulator's fourth child stream (``nuisance``), so adding
nuisances never changes the phantom, the scan jitter or the noise of a case.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ptyframe.errors import ConfigError
from ptyframe.physics.patches import extract_patches, scatter_add_patches, split_positions
from ptyframe.simulation.phantoms import require

PROFILES = ("linear", "sine")
#: the smallest flux factor a pattern may get (a shutter that stays open)
MIN_FLUX = 0.05


@dataclass
class NuisanceConfig:
    """What goes wrong in the experiment (module docstring); all zero: nothing does."""

    position_error_px: float = 0.0
    scan_scale: float = 0.0
    scan_rotation_deg: float = 0.0
    scan_shear: float = 0.0
    scan_drift_y_px: float = 0.0
    scan_drift_x_px: float = 0.0
    probe_defocus_drift_m: float = 0.0
    probe_shift_y_px: float = 0.0
    probe_shift_x_px: float = 0.0
    probe_drift_profile: str = "linear"
    flux_rms: float = 0.0

    def __post_init__(self) -> None:
        o = "simulation.nuisances"
        require(o, "position_error_px", self.position_error_px, 0.0)
        require(o, "scan_scale", self.scan_scale, -0.5, 0.5)
        require(o, "scan_rotation_deg", self.scan_rotation_deg, -45.0, 45.0)
        require(o, "scan_shear", self.scan_shear, -0.5, 0.5)
        require(o, "flux_rms", self.flux_rms, 0.0, 1.0)
        for name in ("scan_drift_y_px", "scan_drift_x_px", "probe_defocus_drift_m"):
            require(o, name, getattr(self, name))  # finite
        for name in ("probe_shift_y_px", "probe_shift_x_px"):
            require(o, name, getattr(self, name))
        if self.probe_drift_profile not in PROFILES:
            raise ConfigError(
                f"{o}.probe_drift_profile = {self.probe_drift_profile!r}; choose one of {PROFILES}"
            )

    @property
    def moves_positions(self) -> bool:
        """True when the recorded positions differ from the true ones."""
        return any(
            v != 0.0
            for v in (
                self.position_error_px,
                self.scan_scale,
                self.scan_rotation_deg,
                self.scan_shear,
                self.scan_drift_y_px,
                self.scan_drift_x_px,
            )
        )

    @property
    def varies_probe(self) -> bool:
        """True when the probe changes along the scan."""
        return any(
            v != 0.0
            for v in (self.probe_defocus_drift_m, self.probe_shift_y_px, self.probe_shift_x_px)
        )

    @property
    def active(self) -> bool:
        """True when any nuisance is switched on."""
        return self.moves_positions or self.varies_probe or self.flux_rms > 0.0


@dataclass
class NuisancePlan:
    """The drawn nuisances of one scan of ``T`` patterns (module docstring)."""

    true_positions_px: np.ndarray  # [T, 2] float64 (y, x) where the beam hit
    recorded_positions_px: np.ndarray  # [T, 2] float64 what the file records
    defocus_m: np.ndarray  # [T] float64 probe defocus change per pattern
    shift_px: np.ndarray  # [T, 2] float64 probe lateral shift per pattern
    flux: np.ndarray  # [T] float64 intensity factor per pattern, mean 1
    config: NuisanceConfig = field(default_factory=NuisanceConfig)

    def truth_extras(self) -> dict[str, np.ndarray]:
        """Return the ``/truth`` datasets this plan adds (only those of active nuisances)."""
        c = self.config
        out: dict[str, np.ndarray] = {}
        if c.moves_positions:
            out["positions_px"] = self.true_positions_px
        if c.varies_probe:
            out["probe_defocus_m"] = self.defocus_m
            out["probe_shift_px"] = self.shift_px
        if c.flux_rms > 0:
            out["flux"] = self.flux
        return out


def scan_time(n: int) -> np.ndarray:
    """Return ``t_j = j / (T - 1)`` ``[T]`` float64 (0 for a single pattern)."""
    return np.arange(n, dtype=np.float64) / max(n - 1, 1)


def profile(name: str, t: np.ndarray) -> np.ndarray:
    """Return the drift profile ``g(t)`` (``linear``: ``t - 1/2``; ``sine``: ``sin(2 pi t)/2``)."""
    if name == "linear":
        return t - 0.5
    if name == "sine":
        return 0.5 * np.sin(2.0 * math.pi * t)
    raise ConfigError(f"probe_drift_profile = {name!r}; choose one of {PROFILES}")


def scan_matrix(scale: float, rotation_deg: float, shear: float) -> np.ndarray:
    """Return ``A = R(theta) H(s) (1 + sigma)`` ``[2, 2]`` acting on ``(y, x)`` column vectors."""
    th = math.radians(rotation_deg)
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    return rot @ np.array([[1.0, shear], [0.0, 1.0]]) * (1.0 + scale)


def plan_nuisances(
    config: NuisanceConfig, positions_px: np.ndarray, rng: np.random.Generator, margin_px: float
) -> NuisancePlan:
    """Draw the nuisances of a scan whose true positions are ``positions_px`` ``[T, 2]``.

    Returns the true and recorded positions moved by one common offset so that both are at
    least ``margin_px`` (the reconstruction's frame is built from the recorded ones).
    """
    c = config
    true = np.asarray(positions_px, dtype=np.float64)
    n = true.shape[0]
    t = scan_time(n)
    centre = 0.5 * (true.min(axis=0) + true.max(axis=0))
    a = scan_matrix(c.scan_scale, c.scan_rotation_deg, c.scan_shear)
    drift = np.array([c.scan_drift_y_px, c.scan_drift_x_px])
    recorded = centre + (true - centre) @ a.T + (t - 0.5)[:, None] * drift[None, :]
    # the draws in a fixed order (errors, then flux), each only when asked for
    if c.position_error_px > 0:
        recorded = recorded + rng.normal(0.0, c.position_error_px, size=true.shape)
    flux = np.ones(n)
    if c.flux_rms > 0:
        flux = np.clip(1.0 + c.flux_rms * rng.standard_normal(n), MIN_FLUX, None)
        flux = flux / flux.mean()
    g = profile(c.probe_drift_profile, t)
    defocus = c.probe_defocus_drift_m * g
    shift = g[:, None] * np.array([c.probe_shift_y_px, c.probe_shift_x_px])[None, :]
    low = np.minimum(true.min(axis=0), recorded.min(axis=0))
    offset = float(margin_px) - low
    if c.moves_positions:  # keep an ideal scan exactly where the scan generator put it
        true, recorded = true + offset, recorded + offset
    else:
        recorded = true.copy()
    return NuisancePlan(true, recorded, defocus, shift, flux, config)


def defocus_kernel(
    window: tuple[int, int], pixel_size_m: float, wavelength_m: float, z_m: torch.Tensor
) -> torch.Tensor:
    """Return ``exp(-i pi lambda z |f|^2)`` ``[B, M, N]`` complex128 in FFT order."""
    m, n = window
    fy = torch.fft.fftfreq(m, d=pixel_size_m, dtype=torch.float64)
    fx = torch.fft.fftfreq(n, d=pixel_size_m, dtype=torch.float64)
    f2 = fy[:, None] ** 2 + fx[None, :] ** 2
    phase = -math.pi * wavelength_m * z_m.to(torch.float64)[:, None, None] * f2[None]
    return torch.polar(torch.ones_like(phase), phase)


def probes_at(
    probe: np.ndarray | torch.Tensor,
    defocus_m: np.ndarray | torch.Tensor,
    shift_px: np.ndarray | torch.Tensor,
    pixel_size_m: float,
    wavelength_m: float,
) -> torch.Tensor:
    """Return the per-pattern probes ``P_j = T_{s_j} D_{z_j} P`` ``[B, K, M, N]`` complex128.

    ``probe`` ``[K, M, N]`` (or ``[M, N]``), ``defocus_m`` ``[B]``, ``shift_px`` ``[B, 2]``
    (module docstring). The propagation and the shift are one multiplication of the spectrum.
    """
    p = torch.as_tensor(np.asarray(probe) if not torch.is_tensor(probe) else probe)
    p = p.to(torch.complex128)
    if p.dim() == 2:
        p = p[None]
    z = torch.as_tensor(np.asarray(defocus_m, dtype=np.float64))
    s = torch.as_tensor(np.asarray(shift_px, dtype=np.float64)).reshape(-1, 2)
    from ptyframe.physics.fft import shift_ramp

    window = (p.shape[-2], p.shape[-1])
    kern = defocus_kernel(window, pixel_size_m, wavelength_m, z) * shift_ramp(
        s, window, torch.complex128
    )
    return torch.fft.ifft2(torch.fft.fft2(p)[None] * kern[:, None])


def noiseless_varying(
    obj: np.ndarray,
    probes: Callable[[slice], torch.Tensor],
    positions_px: np.ndarray,
    window: tuple[int, int],
    batch: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Return centred intensities ``[T, M, N]`` float64 and illumination ``[Ny, Nx]`` float64
    for a probe per pattern: ``I_j = sum_k |F[S_j(O) T_{f_j} P_{j,k}]|^2`` (unitary FFT).

    ``probes(slice)`` returns the probes ``[B, K, M, N]`` of those patterns (unshifted by the
    sub-pixel fractions, which are applied here as in ``FarFieldPtychography``).
    """
    from ptyframe.physics import fft
    from ptyframe.physics.fft import shift_ramp

    obj_t = torch.from_numpy(np.ascontiguousarray(obj))
    pos_t = torch.from_numpy(np.asarray(positions_px, dtype=np.float64))
    out = np.empty((pos_t.shape[0], *window))
    illum = torch.zeros(obj.shape, dtype=torch.float64)
    for i in range(0, pos_t.shape[0], batch):
        sl = slice(i, min(i + batch, pos_t.shape[0]))
        corners, frac = split_positions(pos_t[sl])
        p = probes(sl)
        ramp = shift_ramp(frac, window, p.dtype)[:, None]
        p = torch.fft.ifft2(torch.fft.fft2(p) * ramp)  # T_f P (as physics.fft.fourier_shift)
        patches = extract_patches(obj_t, corners, window)  # [B, M, N]
        wave = fft.far_field(patches[:, None] * p)
        out[sl] = fft.to_centred((wave.real.square() + wave.imag.square()).sum(1)).numpy()
        scatter_add_patches(illum, (p.real.square() + p.imag.square()).sum(1), corners)
    return out, illum.numpy()
