"""Form exit waves through one or several object slices, and carry steps back slice by slice.

The exit-wave model of the fast engines (PIE family, LSQML): it sits between the shifted
probes ``P_j`` ``[B, K, M, N]`` and the detector propagator (``ptyframe.physics.detector``).
Object windows arrive as ``[S, B, M, N]`` (the ``S`` slices' transmissions cut at each
position's corner). Shapes in this module: ``B`` positions, ``K`` incoherent probe modes,
``S`` slices, windows ``M x N`` (the exit-wave window, buffer zone included).

Forward (multislice, Maiden, Humphry & Rodenburg, J. Opt. Soc. Am. A 29, 1606 (2012); the
Adorym supplement eq. S9)::

    u_0     = P_j                                  (incident on slice 0)
    e_s     = O_s(window) * u_s                    (exit of slice s)
    u_{s+1} = Q_s e_s,   Q_s = F^-1 H(dz_s) F      (Fresnel over the gap dz_s to slice s + 1)
    psi     = e_{S-1}

``H`` is the paraxial kernel of ``ptyframe.physics.propagators`` (or the angular spectrum);
``Q_s`` is unitary, so ``Q_s^H = Q_s^-1`` is the propagation back over ``-dz_s``. One slice is
``psi = O * P_j``, the thin-object model of every far-field engine.

Backward (the e3PIE chain of Maiden et al. 2012; the same chain in pty-chi's multislice
LSQML, Odstrcil, Menzel & Guizar-Sicairos, Opt. Express 26, 3108 (2018), eqs. 24a-b applied
per slice). Given the exit-wave change ``chi_{S-1} = psi' - psi`` (``propagator.adjoint`` of
the detector step), for ``s = S-1, ..., 0``::

    (dO_s, du_s) = rule(s, O_s, u_s, chi_s)        (the engine's update rule on slice s)
    chi_{s-1}    = Q_{s-1}^H du_s                  (the incident-wave change seen as the
                                                    exit-wave change of the slice before)

and ``du_0`` is the step of the shifted probe ``P_j`` (the engine maps it back through the
sub-pixel shift). ``gradient_rule`` gives the steepest-descent directions
``dO_s = sum_k conj(u_{s,k}) chi_{s,k}``, ``du_s = conj(O_s) chi_s`` (LSQML, eqs. 24a-b);
with it ``backward`` returns exactly ``-1/2`` the autograd gradient of
``|| psi - (psi + chi) ||^2`` with respect to each slice's windows and the probes (a test holds
them equal). ``e3pie_rule(alpha, beta)`` normalises each direction by a positive scalar per
position (``max |u_s|^2`` and ``max |O_s|^2``, the ePIE normalisation on each slice), so its
steps are the same directions scaled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ptyframe.errors import ConfigError
from ptyframe.physics.propagators import angular_spectrum_transfer, fresnel_transfer

#: ``rule(s, window [B, M, N], incident [B, K, M, N], chi [B, K, M, N])
#:  -> (window step [B, M, N], incident step [B, K, M, N])``.
SliceRule = Callable[
    [int, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]
]


@dataclass
class ExitWaveCache:
    """What ``forward`` keeps for ``backward``.

    ``windows`` ``[S, B, M, N]``: the slices' windows; ``incident`` ``[S, B, K, M, N]``: the
    wave incident on each slice (``incident[0]`` is the shifted probe).
    """

    windows: torch.Tensor
    incident: torch.Tensor


@dataclass
class ChainResult:
    """What ``backward`` returns.

    ``window_steps`` ``[S, B, M, N]``: each slice's step on its windows (to be scattered into
    the slice); ``probe_step`` ``[B, K, M, N]``: the step of the shifted probes (``du_0``);
    ``chi`` ``[S, B, K, M, N]``: the exit-wave change each slice saw (LSQML's step sizes use it).
    """

    window_steps: torch.Tensor
    probe_step: torch.Tensor
    chi: torch.Tensor


def gradient_rule(
    s: int, window: torch.Tensor, incident: torch.Tensor, chi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the steepest-descent directions of slice ``s`` (LSQML, Odstrcil 2018 eqs. 24a-b).

    ``dO = sum_k conj(u_k) chi_k`` ``[B, M, N]`` and ``du = conj(O) chi`` ``[B, K, M, N]``.
    """
    del s
    return (incident.conj() * chi).sum(dim=1), window.conj().unsqueeze(1) * chi


def e3pie_rule(alpha: float = 1.0, beta: float = 1.0, eps: float = 1e-12) -> SliceRule:
    """Return the ePIE rule applied to each slice (e3PIE, Maiden, Humphry & Rodenburg 2012).

    For slice ``s`` with windows ``O``, incident waves ``u`` (modes ``k``), exit change ``chi``::

        dO = alpha sum_k conj(u_k) chi_k / max_r sum_k |u_k(r)|^2
        du = beta conj(O) chi / max_r |O(r)|^2

    the maxima taken per position over the window (ePIE's normalisation, with the incident
    wave in the probe's place).
    """

    def rule(
        s: int, window: torch.Tensor, incident: torch.Tensor, chi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        del s
        u2 = (incident.real.square() + incident.imag.square()).sum(dim=1)  # [B, M, N]
        o2 = window.real.square() + window.imag.square()
        u_max = u2.amax(dim=(-2, -1), keepdim=True).clamp_min(eps)
        o_max = o2.amax(dim=(-2, -1), keepdim=True).clamp_min(eps)
        d_o = (incident.conj() * chi).sum(dim=1) * (alpha / u_max)
        d_u = window.conj().unsqueeze(1) * chi * (beta / o_max).unsqueeze(1)
        return d_o, d_u

    return rule


class SingleSliceExitWave:
    """The thin object: ``psi = O * P_j`` (one slice, nothing to propagate)."""

    n_slices = 1

    def forward(
        self, windows: torch.Tensor, probes: torch.Tensor
    ) -> tuple[torch.Tensor, ExitWaveCache]:
        """Return ``psi`` ``[B, K, M, N]`` and the cache, for windows ``[1, B, M, N]``."""
        _check_windows(windows, 1)
        probes = _batched(probes, windows.shape[1])
        return windows[0].unsqueeze(1) * probes, ExitWaveCache(windows, probes.unsqueeze(0))

    def backward(self, chi: torch.Tensor, cache: ExitWaveCache, rule: SliceRule) -> ChainResult:
        """Apply ``rule`` to the one slice; its incident step is the probe step."""
        d_o, d_u = rule(0, cache.windows[0], cache.incident[0], chi)
        return ChainResult(d_o.unsqueeze(0), d_u, chi.unsqueeze(0))


class MultisliceExitWave:
    """``S`` slices separated by ``gaps_m`` (``S - 1`` distances, or one for all), module doc.

    ``window`` ``(M, N)`` is the exit-wave window (buffer included), ``pixel_size_m`` the
    object pixel. Kernels are built once per distinct gap, in float64, then cast to ``dtype``.
    """

    def __init__(
        self,
        n_slices: int,
        window: tuple[int, int],
        pixel_size_m: float,
        wavelength_m: float,
        gaps_m: float | Sequence[float],
        kernel: str = "fresnel",
        dtype: torch.dtype = torch.complex64,
        device: torch.device | str = "cpu",
    ) -> None:
        if int(n_slices) < 1:
            raise ConfigError(f"n_slices = {n_slices} must be >= 1")
        self.n_slices = int(n_slices)
        gaps = [float(gaps_m)] * (self.n_slices - 1) if _is_number(gaps_m) else list(gaps_m)  # type: ignore[arg-type]
        if len(gaps) != self.n_slices - 1:
            raise ConfigError(
                f"{self.n_slices} slices need {self.n_slices - 1} gaps between them, got "
                f"{len(gaps)} ({gaps})"
            )
        if kernel not in ("fresnel", "angular_spectrum"):
            raise ConfigError(
                f"slice kernel {kernel!r} is unknown; use fresnel or angular_spectrum"
            )
        self.gaps_m = tuple(float(g) for g in gaps)
        self.window = (int(window[0]), int(window[1]))
        make = fresnel_transfer if kernel == "fresnel" else angular_spectrum_transfer
        built: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
        for g in set(self.gaps_m):
            h = make(self.window, pixel_size_m, wavelength_m, g, device)
            built[g] = (h.to(dtype), h.conj().to(dtype))
        self._kernels = [built[g] for g in self.gaps_m]

    def transfer(self, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(H(dz_s), conj H(dz_s))`` ``[M, N]``: the gap's kernels (``Q_s``, ``Q_s^H``
        are ``F^-1 H F`` and ``F^-1 conj(H) F``), in the model's dtype."""
        return self._kernels[s]

    def propagate(self, wave: torch.Tensor, s: int) -> torch.Tensor:
        """Return ``Q_s wave``: ``[..., M, N]`` from the exit of slice ``s`` to slice ``s + 1``."""
        return torch.fft.ifft2(torch.fft.fft2(wave) * self._kernels[s][0])

    def propagate_back(self, wave: torch.Tensor, s: int) -> torch.Tensor:
        """Return ``Q_s^H wave``: from slice ``s + 1`` back to the exit of slice ``s``."""
        return torch.fft.ifft2(torch.fft.fft2(wave) * self._kernels[s][1])

    def forward(
        self, windows: torch.Tensor, probes: torch.Tensor
    ) -> tuple[torch.Tensor, ExitWaveCache]:
        """Return the exit wave ``[B, K, M, N]`` behind the last slice, and the cache.

        ``windows`` ``[S, B, M, N]``; ``probes`` ``[B, K, M, N]`` (or ``[K, M, N]``, shared).
        """
        _check_windows(windows, self.n_slices)
        u = _batched(probes, windows.shape[1])
        incident = u.new_empty((self.n_slices, *u.shape))
        for s in range(self.n_slices):
            incident[s] = u
            e = windows[s].unsqueeze(1) * u
            if s == self.n_slices - 1:
                return e, ExitWaveCache(windows, incident)
            u = self.propagate(e, s)
        raise AssertionError("unreachable")

    def backward(self, chi: torch.Tensor, cache: ExitWaveCache, rule: SliceRule) -> ChainResult:
        """Run the chain from the last slice to the first (module docstring)."""
        n = self.n_slices
        steps = cache.windows.new_empty(cache.windows.shape)
        chis = chi.new_empty((n, *chi.shape))
        for s in range(n - 1, -1, -1):
            chis[s] = chi
            d_o, d_u = rule(s, cache.windows[s], cache.incident[s], chi)
            steps[s] = d_o
            if s == 0:
                return ChainResult(steps, d_u, chis)
            chi = self.propagate_back(d_u, s - 1)
        raise AssertionError("unreachable")


def build_exit_wave(
    n_slices: int,
    window: tuple[int, int],
    pixel_size_m: float,
    wavelength_m: float,
    gaps_m: float | Sequence[float] | None = None,
    kernel: str = "fresnel",
    dtype: torch.dtype = torch.complex64,
    device: torch.device | str = "cpu",
) -> SingleSliceExitWave | MultisliceExitWave:
    """Return the thin-object model for one slice, the multislice model otherwise."""
    if int(n_slices) == 1:
        return SingleSliceExitWave()
    if gaps_m is None:
        raise ConfigError(
            f"{n_slices} slices need their separation: set physics.slice_spacing_m (one gap) "
            "or physics.slice_positions_m (one z per slice)"
        )
    return MultisliceExitWave(
        n_slices, window, pixel_size_m, wavelength_m, gaps_m, kernel, dtype, device
    )


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _check_windows(windows: torch.Tensor, n_slices: int) -> None:
    if windows.dim() != 4 or windows.shape[0] != n_slices:
        raise ValueError(
            f"object windows must be [S={n_slices}, B, M, N], got {tuple(windows.shape)}"
        )


def _batched(probes: torch.Tensor, b: int) -> torch.Tensor:
    """Return probes as ``[B, K, M, N]`` (a shared ``[K, M, N]`` probe is expanded)."""
    if probes.dim() == 3:
        return probes.unsqueeze(0).expand(b, *probes.shape)
    if probes.dim() != 4 or probes.shape[0] != b:
        raise ValueError(f"probes must be [B={b}, K, M, N] or [K, M, N], got {tuple(probes.shape)}")
    return probes
