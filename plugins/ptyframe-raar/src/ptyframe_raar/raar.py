"""Reconstruct with RAAR (Luke 2005) on exit waves, as in Marchesini et al. (2016).

Unknowns are the exit waves ``psi_r`` of every position. Two projections:

* Fourier (modulus) projection ``P_F``: ``F^-1[ sqrt(I_r) F psi_r / |F psi_r| ]`` (unmeasured
  pixels keep the model modulus; ``Xi(0) = 1`` as in PINE eq. 15);
* overlap projection ``P_O``: the object and probe that best explain ``psi`` in least
  squares, by alternating (Thibault et al. 2009, eqs. 8-9)::

      O = sum_r S_r^T(conj(P_r) psi_r) / (sum_r S_r^T |P_r|^2 + eps)
      P = sum_r shift_back(conj(O_r) psi_r) / (sum_r |O_r|^2 + eps)

  then ``P_O(psi)_r = P_r O_r``. With ``rho > 0`` the object is passed through PINE's
  denoising step ``O <- (1 - rho) O + rho D(O)`` (Yamada et al. 2024, eq. 20) inside ``P_O``,
  reusing ptyframe's registered ``prior_step`` ``denoise``.

RAAR update (Luke, Inverse Problems 21, 37 (2005), eq. 14)::

    psi <- beta * [psi + P_O(2 P_F psi - psi) - P_F psi] + (1 - beta) * P_F psi

``beta = 1`` is the difference map. One probe mode; positions are rounded to whole pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from ptyframe.engines.base import Engine, EpochReport, check_range
from ptyframe.engines.pie import center_probe
from ptyframe.errors import ConfigError
from ptyframe.physics.fft import fourier_shift, shift_ramp
from ptyframe.physics.patches import (
    check_inside,
    extract_patches,
    scatter_add_patches,
    split_positions,
)


@dataclass
class RaarConfig:
    """RAAR (Luke 2005) for ptychography; beta = 1 is the difference map."""

    name: str = "raar"
    epochs: int = 100
    beta: float = 0.75
    #: Alternating object/probe updates per overlap projection.
    overlap_iterations: int = 2
    probe_update_start: int = 1
    fix_probe: bool = False
    #: PINE denoising of the object inside the overlap projection (0 = plain RAAR).
    rho: float = 0.0
    center_probe: bool = True

    def __post_init__(self) -> None:
        check_range("raar", "beta", self.beta, 0.0, 1.0)
        check_range("raar", "rho", self.rho, 0.0, 0.5, lo_open=False, hi_open=True)
        if int(self.epochs) < 0 or int(self.overlap_iterations) < 1:
            raise ConfigError("raar.epochs must be >= 0 and raar.overlap_iterations >= 1")


class RaarEngine(Engine):
    """Exit-wave RAAR; see the module docstring."""

    prefers_single_thread = False

    def __init__(self, config: RaarConfig, prior: Any | None = None) -> None:
        super().__init__()
        self.config = config
        self.prior = prior

    def prepare(self, measurements, state, distribution=None, seed: int = 0) -> None:  # noqa: ANN001
        super().prepare(measurements, state, distribution, seed)
        if self.distribution.size > 1:
            raise ConfigError("engine=raar runs on one process; use distribution=single")
        if state.probe.shape[0] != 1 or state.object.shape[0] != 1:
            raise ConfigError("engine=raar supports one probe mode and a single-slice object")
        pos = state.positions_px[torch.as_tensor(measurements.indices)]
        check_inside(pos, state.window, tuple(state.object.shape[-2:]))
        # sub-pixel positions are rounded to whole pixels (the shifted-probe update is not
        # implemented for RAAR yet)
        self.corners, frac = split_positions(torch.round(pos))
        self.frac = frac if bool((frac != 0).any()) else None
        self.psi = self._exit(state.object[0], state.probe)
        self.amp_total = float(measurements.amplitude_sum())

    # ------------------------------------------------------------------ projections
    def _probes(self, probe: torch.Tensor) -> torch.Tensor:
        if self.frac is None:
            return probe.expand(self.corners.shape[0], *probe.shape[-2:])
        return fourier_shift(probe[0], self.frac)

    def _exit(self, obj: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
        return extract_patches(obj, self.corners, probe.shape[-2:]) * self._probes(probe)

    def _fourier(self, psi: torch.Tensor) -> tuple[torch.Tensor, float]:
        meas = self.measurements
        wave = torch.fft.fft2(psi, norm="ortho")
        amp = wave.abs()
        a = meas.amplitudes
        diff = (amp - a).abs()
        if meas.valid is not None:
            diff = diff * meas.valid
        err = float(diff.sum())
        ratio = torch.where(amp > 0, a / amp.clamp_min(1e-30), torch.zeros_like(amp))
        new = wave * ratio
        new = torch.where(amp > 0, new, a.to(new.dtype))  # Xi(0) = 1
        if meas.valid is not None:
            new = torch.where(meas.valid, new, wave)
        return torch.fft.ifft2(new, norm="ortho"), err

    def _overlap(self, psi: torch.Tensor, epoch: int) -> torch.Tensor:
        st, cfg = self.state, self.config
        obj, probe = st.object[0], st.probe
        m = probe.shape[-2:]
        eps = 1e-3  # Tikhonov weight relative to the maximum (keeps unlit pixels bounded)
        update_probe = not cfg.fix_probe and epoch >= int(cfg.probe_update_start)
        for _ in range(int(cfg.overlap_iterations)):
            pr = self._probes(probe)
            num = scatter_add_patches(torch.zeros_like(obj), pr.conj() * psi, self.corners)
            den = scatter_add_patches(torch.zeros_like(obj.real), pr.abs().square(), self.corners)
            obj.copy_(num / (den + eps * float(den.max())))
            if self.prior is not None and self.prior.active(epoch):
                self.prior.apply(st, epoch)
            if update_probe:
                o = extract_patches(obj, self.corners, m)
                pnum = o.conj() * psi
                if self.frac is not None:  # shift each position's term back by -frac_r
                    ramp = shift_ramp(-self.frac, tuple(m), pnum.dtype)
                    pnum = torch.fft.ifft2(torch.fft.fft2(pnum) * ramp)
                pden = o.abs().square().sum(0)
                probe.copy_((pnum.sum(0) / (pden + eps * float(pden.max())))[None])
        return self._exit(obj, probe)

    # ------------------------------------------------------------------ epoch
    def step(self, epoch: int) -> EpochReport:
        t0 = time.perf_counter()
        beta = float(self.config.beta)
        with torch.no_grad():
            pf, err = self._fourier(self.psi)
            po = self._overlap(2 * pf - self.psi, epoch)
            self.psi = beta * (self.psi + po - pf) + (1 - beta) * pf
            if self.config.center_probe:
                sy, sx = center_probe(self.state)
                if sy or sx:
                    self.psi = self._exit(self.state.object[0], self.state.probe)
        return EpochReport(epoch, err / max(self.amp_total, 1e-30), time.perf_counter() - t0)

    def state_dict(self) -> dict[str, Any]:
        return {"psi": self.psi.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "psi" in state:
            self.psi = state["psi"].to(self.psi)
