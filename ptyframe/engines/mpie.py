"""Run mPIE: rPIE steps plus momentum every ``T`` positions (Maiden, Johnson & Li 2017).

Maiden, Johnson & Li, "Further improvements to the ptychographical iterative engine",
Optica 4, 736 (2017). Each position takes the regularised rPIE steps of that paper's eq. 6,
with step sizes ``gamma_O``, ``gamma_P`` in front (``Delta psi = F^-1 Psi' - psi`` from the
batched projection ``ptyframe.physics.projection``)::

    O_r <- O_r + gamma_O conj(P)   Delta psi / ((1 - alpha_O) |P|^2   + alpha_O max|P|^2)
    P   <- P   + gamma_P conj(O_r) Delta psi / ((1 - alpha_P) |O_r|^2 + alpha_P max|O_r|^2)

and after every ``T`` positions the whole object and probe get a momentum step (the paper's
eqs. 8-9, a Nesterov-like acceleration of the T-position update ``O_j - O_{j-T}``)::

    v_O <- eta v_O + (O - O_buffer);   O <- O + gamma_m v_O;   O_buffer <- O

(likewise for ``P``). PtyLab's mPIE defaults (PtyLab.py, ``Engines/mPIE.py``) are
``gamma_O = gamma_P = 0.25``, ``alpha_O = alpha_P = 0.1``, friction ``eta = 0.7``, feedback
``gamma_m = 0.3``; PtyLab applies the momentum at random with probability 0.05 per position,
mPIE here every ``T = 20`` positions (counted on across sweeps), its mean. The defaults keep
the step sizes, the friction and ``T`` but take ``alpha_O = alpha_P = 1`` (the steps normalised
by the maxima, as ePIE's) and ``gamma_m = 0.1``, chosen with ``benchmarks/engine_tuning.py`` on the
natural-image case at a lower dose than the engines table's (the manual's results pages hold
the figures). The momentum buffers persist across sweeps and follow the probe-centring roll.
Everything else (modes, masks, sub-pixel positions, visiting order) is the PIE sweep
(``ptyframe.engines.sequential``); the rules are ``ptyframe.engines.rules.pie_update`` and
``rules.mpie_momentum``. With ``engine.rho > 0`` each epoch ends with PINE's denoising step
``O <- (1 - rho) O + rho D(O)`` (Yamada et al. 2024, eq. 20).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from ptyframe.engines import kernels as kernel_module
from ptyframe.engines.checks import check_range
from ptyframe.engines.config import DenoiseSchedule, PieFamilyConfig
from ptyframe.engines.pie import PieEngine
from ptyframe.engines.rules import PieRule, mpie_momentum
from ptyframe.engines.sequential import SweepPlan
from ptyframe.errors import ConfigError


@dataclass
class MpieConfig(DenoiseSchedule, PieFamilyConfig):
    """mPIE (Maiden, Johnson & Li 2017): rPIE steps + momentum every ``momentum_every``.

    ``rho > 0`` ends each epoch with PINE's denoising step (``DenoiseSchedule``).
    """

    name: str = "mpie"
    #: rPIE regularisation of the object step (alpha_O) and of the probe step (alpha_P).
    alpha: float = 1.0
    beta: float = 1.0
    #: Step sizes gamma_O, gamma_P in front of the rPIE steps.
    object_step: float = 0.25
    probe_step: float = 0.25
    #: T: positions between momentum steps.
    momentum_every: int = 20
    #: eta: friction of the velocity; gamma_m: feedback of the velocity into O and P.
    friction: float = 0.7
    feedback: float = 0.1

    @property
    def pie_rule(self) -> str:
        """mPIE takes rPIE's per-position steps."""
        return "rpie"

    def __post_init__(self) -> None:
        super().__post_init__()
        if int(self.momentum_every) < 1:
            raise ConfigError(f"mpie.momentum_every = {self.momentum_every} must be >= 1")
        check_range("mpie", "alpha", self.alpha, 0.0, 1.0)
        check_range("mpie", "beta", self.beta, 0.0, 1.0)
        check_range("mpie", "object_step", self.object_step, 0.0, 2.0, hi_open=True)
        check_range("mpie", "probe_step", self.probe_step, 0.0, 2.0, hi_open=True)
        check_range("mpie", "friction", self.friction, 0.0, 1.0, lo_open=False, hi_open=True)
        check_range("mpie", "feedback", self.feedback, 0.0, 1.0, lo_open=False)


class MpieEngine(PieEngine):
    """mPIE on the PIE sweep (rule rPIE, step sizes, momentum hook); see the module docstring.

    With ``prior`` each epoch ends with the denoising step after the probe centring; the
    momentum buffers are not mixed, so the next momentum step sees the denoising change as
    part of the object's change since the last buffer update.
    """

    config: MpieConfig  # type: ignore[assignment]

    def __init__(
        self,
        config: MpieConfig,
        prior: Any | None = None,
        context: Any | None = None,
        physics: Any = None,
    ) -> None:
        super().__init__(config, prior, context, physics)  # type: ignore[arg-type]
        self._buffers: dict[str, torch.Tensor] = {}

    def setup(self) -> None:
        """Start the momentum buffers at the current object (every slice of a multislice one)
        and probe, velocities at 0."""
        state = self.state
        assert state is not None
        obj = state.object[0] if state.object.shape[0] == 1 else state.object
        self._buffers = {
            "object": obj.clone(),
            "object_v": torch.zeros_like(obj),
            "probe": state.probe.clone(),
            "probe_v": torch.zeros_like(state.probe),
        }

    def rule(self, update_probe: bool) -> PieRule:
        """rPIE's per-position steps scaled by ``gamma_O``, ``gamma_P``."""
        cfg = self.config
        base = super().rule(update_probe)
        return replace(base, step_o=float(cfg.object_step), step_p=float(cfg.probe_step))

    def plan(self, epoch: int, update_probe: bool) -> SweepPlan:
        """The PIE sweep with the momentum step every ``momentum_every`` positions, counted on
        across sweeps (``epoch`` whole sweeps of this rank's positions came before)."""
        plan = super().plan(epoch, update_probe)
        plan.every, plan.hook = int(self.config.momentum_every), self.momentum
        plan.visited = epoch * len(plan.order)
        return plan

    def momentum(self, obj: torch.Tensor, probe: torch.Tensor) -> None:
        """The momentum step (eqs. 8-9, ``rules.mpie_momentum``) on object and probe."""
        eta, gamma = float(self.config.friction), float(self.config.feedback)
        b = self._buffers
        for x, key in ((obj, "object"), (probe, "probe")):
            v = b[key + "_v"]
            if self.backend.fused and kernel_module.usable(x, v, b[key]):
                flat = [t.numpy().reshape(-1) for t in (x, b[key], v)]
                kernel_module.kernels().momentum(*flat, eta, gamma)
            else:
                mpie_momentum(x, b[key], v, eta, gamma)

    def on_roll(self, sy: int, sx: int) -> None:
        """The momentum buffers follow the probe-centring roll."""
        for t in self._buffers.values():
            t.copy_(torch.roll(t, (sy, sx), dims=(-2, -1)))

    def state_dict(self) -> dict[str, Any]:
        """Return the momentum buffers (and the prior's state)."""
        return {**super().state_dict(), **{k: v.clone() for k, v in self._buffers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        super().load_state_dict(state)
        for k, v in state.items():
            if k in self._buffers:
                self._buffers[k].copy_(v)
