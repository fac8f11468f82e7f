"""Reconstruct with RAAR (Luke 2005) on exit waves, as in Marchesini et al. (2016).

The unknowns of the iteration are the exit waves ``psi`` ``[B, M, N]`` (one per position
``r``); object ``O`` ``[1, H, W]`` and probe ``P`` ``[1, M, N]`` are derived from them. Two
projections:

* Fourier (modulus) projection, with ``a_r = sqrt(I_r)`` and ``F`` the unitary FFT::

      P_F(psi)_r = F^-1[ a_r F psi_r / |F psi_r| ]

  (``Xi(0) = 1`` where ``|F psi_r| = 0``, PINE eq. 15; unmeasured pixels keep the model);
* overlap projection ``P_O``: the object and probe that best explain ``psi`` in least
  squares, by ``overlap_iterations`` alternating updates (Thibault et al., Ultramicroscopy
  109, 338 (2009), eqs. 8-9, with an "inertia" term ``c`` that keeps pixels no position
  lights at their previous value, ``c = inertia * max(den)``)::

      O <- [sum_r S_r^T(conj(P_r) psi_r) + c O] / [sum_r S_r^T |P_r|^2 + c]
      P <- P + sum_r T_-f_r[conj(O_r) (psi_r - O_r P_r)] / [sum_r |O_r|^2 + c]

  then ``P_O(psi)_r = P_r O_r``, with ``P_r = T_f_r P`` the probe Fourier-shifted by the
  sub-pixel part ``f_r`` of position ``r`` (``O_r = S_r O`` at the whole-pixel corner). For
  whole-pixel positions the probe line is Thibault's closed form
  ``P = [sum_r conj(O_r) psi_r + c P] / [sum_r |O_r|^2 + c]``; with sub-pixel shifts (which
  do not commute with ``O_r *``) it is a Jacobi-preconditioned gradient step on
  ``sum_r ||O_r T_f_r P - psi_r||^2``, which stays stable where a closed form built from
  shifted-back products diverged in our tests. With ``rho > 0`` the object of the last
  alternating update is passed through PINE's denoising step
  ``O <- (1 - rho) O + rho D(O)`` (Yamada et al., J. Appl. Cryst. 57 (2024), eq. 20),
  ptyframe's registered ``prior_step`` ``denoise``, before the probe is fitted to it.

RAAR (Luke, Inverse Problems 21, 37 (2005); for ptychography Marchesini et al.,
J. Appl. Cryst. 49, 1245 (2016), sec. 2), with reflections ``R = 2 P - I``::

    psi <- [beta/2 (R_O R_F + I) + (1 - beta) P_F] psi
         = beta [psi + P_O(2 P_F psi - psi) - P_F psi] + (1 - beta) P_F psi

``beta = 1`` is the difference map of Thibault et al. (2009, eq. 7 with their beta = 1).
The object and probe held in the state after an epoch are those of the overlap projection in
that epoch; ``data_error`` is theirs (``sum | |F(P_r O_r)| - a_r | / sum a_r``, the PIE
engines' error), not that of the iterate ``psi``, which for the difference map never matches
the data. One probe mode; a perfect raster invites the raster-grid pathology (Thibault et
al. 2009), as for every projection algorithm: use a jittered scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ptyframe.engines.base import Capabilities, PriorStep, check_prior, check_range
from ptyframe.engines.config import PieFamilyConfig
from ptyframe.engines.frame import FastEngine
from ptyframe.engines.prior import DenoiseStepConfig
from ptyframe.errors import ConfigError
from ptyframe.physics.patches import extract_patches, scatter_add_patches
from ptyframe.physics.projection import fourier_projection, model_modulus


@dataclass
class RaarConfig(PieFamilyConfig):
    """RAAR (Luke 2005) for ptychography; beta = 1 is the difference map (Thibault 2009)."""

    name: str = "raar"
    #: Relaxation in [0, 1]; 1 = difference map. 0.75-0.9 is the usual range.
    beta: float = 0.9
    #: Alternating object/probe updates per overlap projection.
    overlap_iterations: int = 2
    #: First epoch (0-based) that updates the probe.
    probe_update_start: int = 1
    #: Inertia ``c / max(den)`` of the least-squares object and probe updates.
    inertia: float = 1e-3
    #: PINE denoising of the object inside the overlap projection (0 = plain RAAR).
    rho: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()  # epochs, probe_update_start
        check_range("raar", "beta", self.beta, 0.0, 1.0)
        check_range("raar", "rho", self.rho, 0.0, 0.5, lo_open=False, hi_open=True)
        check_range("raar", "inertia", self.inertia, 0.0, 1.0, lo_open=True)
        if int(self.overlap_iterations) < 1:
            raise ConfigError(f"raar.overlap_iterations = {self.overlap_iterations} must be >= 1")

    def prior_config(self) -> DenoiseStepConfig:
        """The denoising step inside every epoch's last overlap projection (strength rho)."""
        return DenoiseStepConfig(rho=self.rho)


class RaarEngine(FastEngine):
    """Exit-wave RAAR; see the module docstring. ``prior``: a ``DenoiseStep`` or None.

    On the epoch frame of ``ptyframe.engines.frame``: its sweep is one RAAR iteration; the
    denoising step runs inside the overlap projection (``Capabilities.prior = "in_sweep"``).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(prior="in_sweep")

    def __init__(
        self, config: RaarConfig, prior: PriorStep | None = None, context: Any | None = None
    ) -> None:
        super().__init__(context)
        self.config = config
        self.prior = prior
        check_prior(config, prior)

    def setup(self) -> None:
        """Check what RAAR supports and start the exit waves from the state."""
        state, meas = self.state, self.measurements
        assert state is not None and meas is not None
        if self.distribution.size > 1:
            raise ConfigError("engine=raar runs on one process; use distribution=single")
        if state.probe.shape[0] != 1:
            raise ConfigError(
                "engine=raar supports one probe mode; set init.probe_modes=1 "
                "(or use engine=epie for modes)"
            )
        if meas.amplitudes.device != state.object.device:
            raise ConfigError(
                "engine=raar keeps every exit wave on the device (twice the patterns' "
                "memory), so patterns on the host save nothing: set patterns_on_host=false, "
                "or use a minibatch engine (minibatch_pie, lsqml, autodiff) to stream them"
            )
        self.corners = self.scan.corners.to(state.object.device)
        self._all = torch.arange(self.scan.n)
        self.psi = self._exit(state.object[0], state.probe)

    # ------------------------------------------------------------------ projections
    def _probes(self, probe: torch.Tensor) -> torch.Tensor:
        """Return ``P_r`` ``[B, M, N]`` (the probe shifted by each sub-pixel offset)."""
        if not self.scan.shifted:
            return probe.expand(self.corners.shape[0], *probe.shape[-2:])
        ry, rx = self.scan.ramps(probe.dtype)
        ramps = ry[:, :, None] * rx[:, None, :]
        return torch.fft.ifft2(torch.fft.fft2(probe) * ramps)

    def _exit(self, obj: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
        return extract_patches(obj, self.corners, tuple(probe.shape[-2:])) * self._probes(probe)

    def _fourier(self, psi: torch.Tensor) -> torch.Tensor:
        """Return ``P_F(psi)`` (``ptyframe.physics.projection.fourier_projection``)."""
        meas = self.measurements
        new, _ = fourier_projection(psi.unsqueeze(1), meas.amplitudes, meas.valid)
        return new.squeeze(1)

    def _error(self, exit_waves: torch.Tensor) -> float:
        """Return ``sum | |F psi| - a_r |`` over measured pixels (the frame divides it by
        ``sum a_r``)."""
        meas = self.measurements
        assert meas is not None
        amp = model_modulus(torch.fft.fft2(exit_waves.unsqueeze(1), norm="ortho"))
        diff = (amp - meas.amplitudes).abs()
        if meas.valid is not None:
            diff = diff * meas.valid
        return float(diff.sum(dtype=torch.float64))

    def _overlap(self, psi: torch.Tensor, epoch: int, update_probe: bool) -> torch.Tensor:
        """Fit ``O`` and ``P`` to ``psi`` in place (module docstring); return ``P_O(psi)``."""
        st, cfg = self.state, self.config
        assert st is not None
        obj, probe = st.object[0], st.probe
        m = tuple(probe.shape[-2:])
        inertia = float(cfg.inertia)
        n_inner = int(cfg.overlap_iterations)
        for i in range(n_inner):
            pr = self._probes(probe)
            num = scatter_add_patches(torch.zeros_like(obj), pr.conj() * psi, self.corners)
            den = scatter_add_patches(torch.zeros_like(obj.real), pr.abs().square(), self.corners)
            c = inertia * float(den.max())
            obj.copy_((num + c * obj) / (den + c))
            last = i == n_inner - 1 or not update_probe
            if last and self.prior is not None and self.prior.active(epoch):
                self.prior.apply(st, epoch)
            if not update_probe:
                break  # with the probe fixed, one object update is the exact projection
            o = extract_patches(obj, self.corners, m)
            resid = o.conj() * (psi - o * self._probes(probe))
            if self.scan.shifted:  # T_-f_r: shift each position's term back
                ry, rx = self.scan.ramps(resid.dtype)
                ramps = (ry[:, :, None] * rx[:, None, :]).conj()
                resid = torch.fft.ifft2(torch.fft.fft2(resid) * ramps)
            pden = o.abs().square().sum(0)
            c = inertia * float(pden.max())
            probe.add_((resid.sum(0) / (pden + c))[None])
        return self._exit(obj, probe)

    # ------------------------------------------------------------------ epoch
    def sweep(self, epoch: int, update_probe: bool) -> float:
        """Apply the RAAR operator once; return the error numerator of the fitted ``O``, ``P``.

        ``update_probe`` is the frame's schedule; the overlap projection reads the same one.
        """
        beta = float(self.config.beta)
        pf = self._fourier(self.psi)
        po = self._overlap(2 * pf - self.psi, epoch, update_probe)
        self.psi = beta * (self.psi + po - pf) + (1 - beta) * pf
        return self._error(po)

    def on_roll(self, sy: int, sx: int) -> None:
        """Every exit wave moves with probe and object."""
        self.psi = torch.roll(self.psi, (sy, sx), dims=(-2, -1))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "psi": self.psi.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "psi" in state:
            self.psi = state["psi"].to(self.psi)
