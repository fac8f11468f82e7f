"""Run the PIE family: ePIE (Maiden & Rodenburg 2009) and rPIE (Maiden, Johnson & Li 2017).

One epoch visits every position once in a random order (``visiting_order``). For position
``r`` with object window ``O_r = S_r(O)`` and probe ``P`` (both taken *before* this position's
update, as in the PINE reference code):

    psi       = O_r * P                                             (exit wave)
    Psi       = F psi
    Psi'      = sqrt(I_r) * Xi(Psi)        Xi(z) = z/|z|, Xi(0) = 1  (PINE eqs. 14-15)
    dpsi      = F^-1 Psi' - psi

ePIE (PINE paper eqs. 18-19)::

    O_r <- O_r + alpha * conj(P)   * dpsi / max|P|^2
    P   <- P   + beta  * conj(O_r) * dpsi / max|O_r|^2

rPIE (Maiden, Johnson & Li, Optica 4, 736 (2017), eq. 6 for the object; the same form with
``beta`` for the probe, which is how the PINE paper sweeps rPIE's (alpha, beta))::

    O_r <- O_r + conj(P)   * dpsi / ((1 - alpha) |P|^2   + alpha * max|P|^2)
    P   <- P   + conj(O_r) * dpsi / ((1 - beta)  |O_r|^2 + beta  * max|O_r|^2)

Extensions, each reducing to the published rule in the plain case:

* unmeasured pixels (negative stored intensity) keep the model's modulus (factor 1);
* ``K`` incoherent probe modes (Thibault & Menzel 2013): ``|Psi|`` is replaced by
  ``sqrt(sum_k |Psi_k|^2)``, the object step sums ``conj(P_k) dpsi_k`` and normalises by
  ``max sum_k |P_k|^2``, and each mode gets its own probe step;
* sub-pixel positions: the probe is Fourier-shifted by the fractional part and the probe
  step is shifted back (the shift is unitary, so this is the exact gradient mapping).

After each sweep the probe and object are rolled together by whole pixels so the probe's
intensity centre of mass sits at the window centre (as the PINE reference code does), unless
``center_probe=false``. With several ranks the sweeps run on shards and the object and probe
are averaged afterwards (data-parallel PIE variant, see ``ptyframe-mpi``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ptyframe.data.measurements import Measurements
from ptyframe.distributed.base import Distribution
from ptyframe.engines.base import Engine, EpochReport, check_range, visiting_order
from ptyframe.errors import ConfigError
from ptyframe.physics.fft import fourier_shift
from ptyframe.physics.patches import check_inside, split_positions
from ptyframe.state import ReconstructionState


@dataclass
class EpieConfig:
    """ePIE (Maiden & Rodenburg 2009; PINE paper eqs. 18-19).

    Default steps ``alpha = beta = 0.25`` (PtyLab's ePIE defaults). The former ``(1.0, 0.2)``
    fits each pattern's noise in full at every visit: on the particle film of
    ``ptyframe simulate +case=particle_film_small`` (1e5 photons, 300 sweeps, two seeds) its
    object scored FRC 0.31-0.32 at 1/2 Nyquist against 0.38 at ``(0.25, 0.25)``, as PtyLab's
    ePIE; on the full ``+case=particle_film`` 0.33 against 0.44 (PtyLab 0.435) (README,
    "ePIE/rPIE defaults").
    """

    name: str = "epie"
    epochs: int = 100
    alpha: float = 0.25
    beta: float = 0.25
    probe_update_start: int = 0
    fix_probe: bool = False
    center_probe: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        _check_common(self)
        check_range(self.name, "alpha", self.alpha, 0.0, 2.0, hi_open=True)
        check_range(self.name, "beta", self.beta, 0.0, 2.0, hi_open=True)


@dataclass
class RpieConfig:
    """rPIE (Maiden, Johnson & Li 2017): regularised object and probe steps."""

    name: str = "rpie"
    epochs: int = 100
    alpha: float = 0.1
    beta: float = 1.0
    probe_update_start: int = 0
    fix_probe: bool = False
    center_probe: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        _check_common(self)
        check_range(self.name, "alpha", self.alpha, 0.0, 1.0)
        check_range(self.name, "beta", self.beta, 0.0, 100.0)


def _check_common(cfg: EpieConfig | RpieConfig) -> None:
    if int(cfg.epochs) < 0:
        raise ConfigError(f"{cfg.name}.epochs = {cfg.epochs} must be >= 0")
    if int(cfg.probe_update_start) < 0:
        raise ConfigError(f"{cfg.name}.probe_update_start = {cfg.probe_update_start} must be >= 0")


class PieEngine(Engine):
    """ePIE or rPIE, chosen by ``rule``; see the module docstring for the update rules."""

    #: Per-position loops on small arrays run fastest on one torch thread (ENVIRONMENT.md).
    prefers_single_thread = True

    def __init__(self, config: EpieConfig | RpieConfig, rule: str) -> None:
        super().__init__()
        if rule not in ("epie", "rpie"):
            raise ValueError(f"unknown PIE rule {rule!r}")
        self.config = config
        self.rule = rule

    # ------------------------------------------------------------------ setup
    def prepare(
        self,
        measurements: Measurements,
        state: ReconstructionState,
        distribution: Distribution | None = None,
        seed: int = 0,
    ) -> None:
        super().prepare(measurements, state, distribution, seed)
        if state.object.shape[0] != 1:
            raise ConfigError(
                f"{self.config.name} reconstructs a single-slice object; the state has "
                f"{state.object.shape[0]} slices (use engine=autodiff for multislice)"
            )
        if measurements.window != state.window:
            raise ConfigError(
                f"patterns are {measurements.window} but the probe is {state.window}; "
                "they must match"
            )
        positions = state.positions_px[torch.as_tensor(measurements.indices)]
        check_inside(positions, state.window, tuple(state.object.shape[-2:]))
        corners, frac = split_positions(positions)
        self._cy = corners[:, 0].tolist()
        self._cx = corners[:, 1].tolist()
        self._frac = frac.to(state.object.device)
        self._shifted = (frac != 0).any(dim=1).tolist()
        (self._amp_total,) = self.distribution.sum_scalars(measurements.amplitude_sum())
        if self._amp_total <= 0:
            raise ConfigError("the measured patterns are all zero; nothing to reconstruct")

    # ------------------------------------------------------------------ epoch
    def step(self, epoch: int) -> EpochReport:
        """Run one PIE sweep over this rank's positions in the order of ``epoch``."""
        assert self.measurements is not None and self.state is not None, "call prepare() first"
        t0 = time.perf_counter()
        cfg = self.config
        order = visiting_order(self.measurements.n, self.seed, epoch)
        update_probe = (not cfg.fix_probe) and epoch >= int(cfg.probe_update_start)
        err = self.sweep(order.tolist(), update_probe)
        if self.distribution.size > 1:
            self.distribution.allreduce_mean_(self.state.object)
            self.distribution.allreduce_mean_(self.state.probe)
        if cfg.center_probe:
            center_probe(self.state)
        (err_sum,) = self.distribution.sum_scalars(err)
        return EpochReport(epoch, err_sum / self._amp_total, time.perf_counter() - t0)

    def sweep(self, order: list[int], update_probe: bool) -> float:
        """Update object and probe once per position in ``order``; return the error numerator."""
        state, meas = self.state, self.measurements
        assert state is not None and meas is not None
        obj = state.object[0]
        probe = state.probe
        n_modes, m, n = probe.shape
        amps, valid = meas.amplitudes, meas.valid
        alpha, beta = float(self.config.alpha), float(self.config.beta)
        rpie = self.rule == "rpie"
        err = torch.zeros((), dtype=torch.float64, device=obj.device)
        for j in order:
            y, x = self._cy[j], self._cx[j]
            patch = obj[y : y + m, x : x + n]
            o_old = patch.clone()
            shifted = self._shifted[j]
            p = fourier_shift(probe, self._frac[j : j + 1])[0] if shifted else probe
            psi = o_old * p  # [K, M, N]
            wave = torch.fft.fft2(psi, norm="ortho")
            if n_modes == 1:
                amp = wave[0].abs()
            else:
                amp = (wave.real.square() + wave.imag.square()).sum(0).sqrt_()
            a = amps[j]
            if valid is None:
                err += torch.dist(amp, a, 1)
                ratio = a / amp
            else:
                v = valid[j]
                err += (amp - a).abs_().mul_(v).sum()
                ratio = torch.where(v, a / amp, 1.0)
            if bool(torch.isfinite(ratio).all()):
                dwave = wave * ratio.sub_(1.0)  # Psi' - Psi
            else:
                dwave = _xi_zero(wave, amp, a, ratio)
            dpsi = torch.fft.ifft2(dwave, norm="ortho")  # F^-1 Psi' - psi
            # ---- object step (uses the probe before this position's probe step)
            p_abs2 = p.real.square() + p.imag.square()
            if n_modes > 1:
                p_abs2 = p_abs2.sum(0)
                grad_o = (p.conj() * dpsi).sum(0)
            else:
                p_abs2 = p_abs2[0]
                grad_o = p[0].conj() * dpsi[0]
            p_max = float(p_abs2.max())
            if p_max > 0:
                if rpie:
                    patch.add_(grad_o.div_(p_abs2.mul_(1.0 - alpha).add_(alpha * p_max)))
                else:
                    patch.add_(grad_o, alpha=alpha / p_max)
            # ---- probe step (uses the object window before this position's object step)
            if update_probe:
                o_abs2 = o_old.real.square() + o_old.imag.square()
                o_max = float(o_abs2.max())
                if o_max > 0:
                    step = o_old.conj() * dpsi  # [K, M, N]
                    if rpie:
                        step.div_(o_abs2.mul_(1.0 - beta).add_(beta * o_max))
                    else:
                        step.mul_(beta / o_max)
                    if shifted:
                        step = fourier_shift(step, -self._frac[j : j + 1])[0]
                    probe.add_(step)
        return float(err)


def _xi_zero(
    wave: torch.Tensor, amp: torch.Tensor, a: torch.Tensor, ratio: torch.Tensor
) -> torch.Tensor:
    """Return ``Psi' - Psi`` where some model moduli are exactly zero (PINE eq. 15).

    ``Xi(0) = 1``: where ``|Psi| = 0`` the projection gives ``Psi' = sqrt(I)`` (for ``K``
    modes ``sqrt(I / K)`` each, so the summed intensity matches). ``Psi`` is 0 there, so
    ``Psi' - Psi = Psi'``.
    """
    zero = amp == 0
    safe = torch.where(zero, torch.zeros_like(ratio), ratio)
    dwave = wave * (safe - 1.0)
    fill = (a / wave.shape[0] ** 0.5).to(dwave.dtype)
    return torch.where(zero, fill, dwave)


def center_probe(state: ReconstructionState) -> tuple[int, int]:
    """Roll probe and object by whole pixels so the probe's intensity centroid is centred.

    Rolling both by the same ``s`` keeps every exit wave a shifted copy of itself, so every
    modelled intensity is unchanged. Returns the applied shift ``(sy, sx)``.
    """
    probe = state.probe
    inten = (probe.real.square() + probe.imag.square()).sum(0)
    total = float(inten.sum())
    if total <= 0:
        return (0, 0)
    m, n = inten.shape
    cy = float((inten.sum(1) * torch.arange(m, dtype=inten.dtype, device=inten.device)).sum())
    cx = float((inten.sum(0) * torch.arange(n, dtype=inten.dtype, device=inten.device)).sum())
    sy = int(round(m // 2 - cy / total))
    sx = int(round(n // 2 - cx / total))
    if sy or sx:
        state.probe.copy_(torch.roll(probe, (sy, sx), dims=(-2, -1)))
        state.object.copy_(torch.roll(state.object, (sy, sx), dims=(-2, -1)))
    return (sy, sx)


def build_epie(config: EpieConfig, context: object) -> PieEngine:
    """Build an ePIE engine."""
    return PieEngine(config, "epie")


def build_rpie(config: RpieConfig, context: object) -> PieEngine:
    """Build an rPIE engine."""
    return PieEngine(config, "rpie")
