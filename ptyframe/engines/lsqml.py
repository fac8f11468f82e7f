"""Run LSQML: least-squares maximum-likelihood ptychography (Odstrcil et al. 2018).

Odstrcil, Menzel & Guizar-Sicairos, "Iterative least-squares solver for generalized
maximum-likelihood ptychography", Opt. Express 26, 3108 (2018). For one group of positions
(``ptyframe.engines.minibatch``), all from the same ``O`` and ``P``:

1. Exit-wave update (sec. 3, eqs. 12-17). ``Psi_b = F psi_b``, model ``A^2 = sum_k |Psi_bk|^2``:

   * ``gaussian`` (amplitude noise): ``Psi' = sqrt(I) Psi / A`` (the projection of
     ``ptyframe.physics.projection``, Xi(0) = 1, masked pixels free) -- the step 1/2 of
     eq. 16 on the amplitude likelihood;
   * ``poisson``: ``Psi' = Psi (1 - alpha_b xi)``, ``xi = 1 - I / A^2`` (eq. 12b), with the
     step ``alpha_b`` per position that minimises the Poisson negative log-likelihood along
     that direction (eq. 17; three Newton steps from 1/2, clipped to [0, 1]).

   ``chi_b = F^-1 (Psi'_b - Psi_b)`` (eq. 19).
2. Update directions, preconditioned by the summed illumination (eqs. 24-25)::

       dO = sum_b S_b^T sum_k conj(P_bk) chi_bk / (sum_b S_b^T sum_k |P_bk|^2 + d_O max(.))
       dP = sum_b T_-f_b[conj(O_b) chi_b]      / (sum_b |O_b|^2 + d_P max(.))

3. Optimal step sizes (eqs. 22-23): for each position the real ``(a_O, a_P)`` minimising
   ``|| chi_b - a_O dO_b P_b - a_P O_b dP_b ||^2`` (``dO_b = S_b dO``, ``dP_b = T_f_b dP``)::

       [ sum |u|^2        Re sum conj(u) v ] [a_O]   [ Re sum conj(u) chi ]
       [ Re sum conj(u) v sum |v|^2        ] [a_P] = [ Re sum conj(v) chi ],  u = dO_b P_b,
                                                                             v = O_b dP_b

   with a Tikhonov term ``step_reg`` times the mean diagonal (1e-6; PtychoShelves and
   pty-chi use 0.1) and negative steps clipped to 0; the group takes the mean over its
   positions, and ``O += damping a_O dO``, ``P += damping a_P dP``.

4. After each epoch, momentum on the epoch's change (the mPIE momentum of Maiden, Johnson &
   Li 2017, eqs. 8-9, with ``T`` = one epoch; PtychoShelves and pty-chi add a momentum to
   LSQML too): ``v <- friction v + (x - x_start)``, ``x += momentum v``, for ``O`` and
   ``P``. Without it (``momentum=0``) the grouped updates, like any parallel update, spread
   low spatial frequencies of the object slowly and sit on a low-contrast object for over
   100 sweeps on the natural-image benchmark case. Defaults ``momentum=0.75, friction=0.9``
   and ``object_reg=0.5``: chosen with ``benchmarks/engine_tuning.py`` on the natural image
   at a lower dose than the engines table's (the manual's results pages hold the figures).

5. Near field and multislice (``physics=nearfield | multislice``): the group's exit waves
   go through the run's propagator and slices and the chain carries the step back slice by
   slice (``ptyframe.engines.visit_sweeps.lsqml_visits``; on the numba backend, which
   ``backend=auto`` picks for these too, its fused form ``ptyframe.engines.lsqml_fused``).

6. With ``rho > 0``, after the momentum (and the probe centring) PINE's denoising step
   ``O <- (1 - rho) O + rho D(O)`` (Yamada et al. 2024, eq. 20); the momentum's start point
   is the object before it, so the next epoch's change includes the denoising.

``batching='compact'`` (default: spatial clusters, the paper's "compact" groups),
``'sparse'`` (mutually non-overlapping positions) or ``'random'``. With ``sparse`` groups
from a vacuum start the step solve hands most of each update to the probe (a group of
non-overlapping windows of a flat object sees the same object, so ``O_b dP_b`` fits
``chi_b`` better than ``dO_b P_b`` does) and the object stalls in our tests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch

from ptyframe.engines.base import Capabilities, PriorStep, check_prior, check_range
from ptyframe.engines.config import DenoiseSchedule, MinibatchConfig
from ptyframe.engines.lsqml_fused import fused_group_ok, fused_lsqml_visits
from ptyframe.engines.lsqml_rules import poisson_step as poisson_step  # the exit-wave rule
from ptyframe.engines.lsqml_rules import re_dot as re_dot
from ptyframe.engines.minibatch import (
    MinibatchEngine,
    check_batching,
    gather_windows,
    mode_sum,
    scatter_windows,
)
from ptyframe.engines.visit import check_physics
from ptyframe.engines.visit_sweeps import lsqml_visits
from ptyframe.errors import ConfigError
from ptyframe.physics.fft import far_field, far_field_adjoint
from ptyframe.physics.projection import model_modulus

LIKELIHOODS = ("gaussian", "poisson")


@dataclass
class LsqmlConfig(DenoiseSchedule, MinibatchConfig):
    """LSQML (Odstrcil, Menzel & Guizar-Sicairos 2018); ``rho > 0``: PINE's denoising step."""

    name: str = "lsqml"
    likelihood: str = "gaussian"
    batch_size: int = 32
    batching: str = "compact"
    #: d_O, d_P: preconditioner regularisation, relative to the maximum illumination.
    object_reg: float = 0.5
    probe_reg: float = 0.1
    #: Tikhonov weight of the step solve, relative to the mean diagonal.
    step_reg: float = 1e-6
    #: Factor on the optimal steps (object; the probe's is ``damping * probe_damping``).
    damping: float = 0.9
    probe_damping: float = 1.0
    #: Momentum on each epoch's change (0 = none; ``MinibatchEngine._epoch_momentum``).
    momentum: float = 0.75
    friction: float = 0.9

    def __post_init__(self) -> None:
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(
                f"lsqml.likelihood = {self.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}"
            )
        super().__post_init__()
        check_batching("lsqml", self.batching, self.batch_size)
        check_range("lsqml", "object_reg", self.object_reg, 0.0, 10.0)
        check_range("lsqml", "probe_reg", self.probe_reg, 0.0, 10.0)
        check_range("lsqml", "damping", self.damping, 0.0, 2.0, hi_open=True)
        check_range("lsqml", "probe_damping", self.probe_damping, 0.0, 1.0)
        check_range("lsqml", "step_reg", self.step_reg, 0.0, 10.0, lo_open=False)
        check_range("lsqml", "momentum", self.momentum, 0.0, 2.0, lo_open=False, hi_open=True)
        check_range("lsqml", "friction", self.friction, 0.0, 1.0, lo_open=False, hi_open=True)


def optimal_steps(
    chi: torch.Tensor, u: torch.Tensor, v: torch.Tensor | None, lam: float = 1e-6
) -> tuple[float, float]:
    """Return the group's mean least-squares steps ``(a_O, a_P)`` (eqs. 22-23).

    The diagonal gets ``lam`` times its mean over the group (Tikhonov); negative steps are
    clipped to 0.
    """
    a11 = re_dot(u, u)
    b1 = re_dot(u, chi)
    a11 = a11 + lam * a11.mean()
    if v is None:
        a_o = b1 / a11.clamp_min(1e-30)
        return float(a_o.clamp_min(0).mean()), 0.0
    a22 = re_dot(v, v)
    a22 = a22 + lam * a22.mean()
    a12 = re_dot(u, v)
    b2 = re_dot(v, chi)
    det = (a11 * a22 - a12.square()).clamp_min(1e-30)
    a_o = ((a22 * b1 - a12 * b2) / det).clamp_min(0)
    a_p = ((a11 * b2 - a12 * b1) / det).clamp_min(0)
    return float(a_o.mean()), float(a_p.mean())


class LsqmlEngine(MinibatchEngine):
    """LSQML; see the module docstring. ``prior``: the denoising step after each epoch."""

    config: LsqmlConfig

    capabilities: ClassVar[Capabilities] = replace(
        MinibatchEngine.capabilities, propagators=("farfield", "nearfield"), slices=True
    )

    #: The numba backend also runs the near field through one slice and several slices, far
    #: or near field, with the fused group update (``ptyframe.engines.lsqml_fused``), so
    #: ``backend=auto`` picks numba for them too.
    numba_near_field = True
    numba_multislice = True

    def __init__(
        self,
        config: LsqmlConfig,
        prior: PriorStep | None = None,
        context: Any | None = None,
        physics: Any = None,
    ) -> None:
        """``physics``: the run's forward model (far field, near field, multislice; None:
        far field), read for the visit's propagator and slices (``ptyframe.engines.visit``)."""
        super().__init__(context)
        check_physics(config.name, physics)
        self.physics = physics
        self.config = config
        self.prior = prior
        check_prior(config, prior)

    def update_batch(self, idx: torch.Tensor, update_probe: bool) -> float:
        """One group's LSQML update (module docstring); return its error numerator.

        The object-sized sums (``dO``'s numerator and weight) live on the group's bounding
        box only (``BatchedWaves.box``): outside it both are zero, so ``max W_O`` and the
        step are those of the whole object.
        """
        if not self.visit.plain:  # near field or slices: the general visit
            if fused_group_ok(self):
                return fused_lsqml_visits(self, self.config, idx, update_probe)
            return lsqml_visits(self, self.config, idx, update_probe)
        state, cfg = self.state, self.config
        assert state is not None
        y0, y1, x0, x1 = self.waves.box(idx)
        obj, probe = state.object[0, y0:y1, x0:x1], state.probe  # a view of the box
        corners = self.waves.corners_of(idx, obj.device)
        corners = corners - torch.tensor([y0, x0], device=corners.device)
        o_b = gather_windows(obj, corners, self.waves.window)  # [B, M, N]
        ramps = self.waves.ramps(idx, probe)  # [B, 1, M, N] or None (integer positions)
        p_b = self.waves.probes(probe, idx, ramps)  # [B, K, M, N]
        psi = o_b.unsqueeze(1) * p_b
        amps, valid = self.data(idx)
        wave = far_field(psi)
        if cfg.likelihood == "gaussian":
            delta, e = self.detector_step(wave, amps, valid)  # e: sum_valid |A - a| each
            err = float(e.sum())
        else:
            diff = (model_modulus(wave) - amps).abs_()
            err = float((diff if valid is None else diff * valid).sum(dtype=torch.float64))
            delta, _ = poisson_step(wave, amps.square(), valid)
        chi = far_field_adjoint(delta)
        if self.hooks is not None:
            self.hooks.observe(idx, o_b, p_b, chi)  # the position sums (before the update)
        # fresh contiguous buffers (``obj`` is a strided view; the scatter adds in place)
        num = torch.zeros(obj.shape, dtype=obj.dtype, device=obj.device)
        w_o = torch.zeros(obj.shape, dtype=obj.real.dtype, device=obj.device)
        scatter_windows(num, mode_sum(p_b.conj() * chi), corners)
        scatter_windows(w_o, mode_sum(p_b.real.square() + p_b.imag.square()), corners)
        d_obj = num.div_(w_o.add_(float(cfg.object_reg) * float(w_o.max())))
        u = gather_windows(d_obj, corners, self.waves.window).unsqueeze(1) * p_b
        d_probe = v = None
        if update_probe:
            w_p = (o_b.real.square() + o_b.imag.square()).sum(0)
            n_p = self.waves.shift_back_sum(o_b.conj().unsqueeze(1) * chi, idx, ramps)
            d_probe = n_p.div_(w_p.add_(float(cfg.probe_reg) * float(w_p.max())))
            v = o_b.unsqueeze(1) * self.waves.probes(d_probe, idx, ramps)
        a_o, a_p = optimal_steps(chi, u, v, float(cfg.step_reg))
        damping = float(cfg.damping)
        obj.add_(d_obj, alpha=damping * a_o)
        if d_probe is not None:
            probe.add_(d_probe, alpha=damping * float(cfg.probe_damping) * a_p)
        return err
