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
mPIE here every ``T = 20`` positions, its mean. The defaults here keep the step sizes, the
friction and ``T`` but take ``alpha_O = alpha_P = 1`` (the steps normalised by the maxima,
as ePIE's) and ``gamma_m = 0.1``: tuned with ``benchmarks/engine_tuning.py`` on the
natural-image case at 1e5 photons (noise seed 1), where after 100 sweeps they gave FRC 0.335
at 1/2 Nyquist and raw NRMSE 0.052 against 0.150 and 0.066 with PtyLab's values (README,
"Engines on the natural-image case", reports them on the 1e6-photon case). The momentum
buffers persist across sweeps and follow the probe-centring roll. Everything else (modes,
masks, sub-pixel positions, visiting order) is ``ptyframe.engines.pie``. With
``engine.rho > 0`` each epoch ends with PINE's denoising step ``O <- (1 - rho) O + rho D(O)``
(Yamada et al. 2024, eq. 20).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ptyframe.data.measurements import Measurements
from ptyframe.distributed.base import Distribution
from ptyframe.engines import pie_kernels
from ptyframe.engines.base import EpochReport, check_range
from ptyframe.engines.config import DenoiseSchedule, PieFamilyConfig
from ptyframe.engines.pie import PieEngine
from ptyframe.engines.prior import DenoiseStep
from ptyframe.errors import ConfigError
from ptyframe.physics.ambiguities import center_probe
from ptyframe.state import ReconstructionState

if TYPE_CHECKING:
    from ptyframe.registry import BuildContext


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

    def __init__(
        self,
        config: MpieConfig,
        prior: DenoiseStep | None = None,
        context: BuildContext | None = None,
    ) -> None:
        super().__init__(config, prior, context)  # type: ignore[arg-type]
        self.step_sizes = (float(config.object_step), float(config.probe_step))
        self.every_positions = int(config.momentum_every)
        self._buffers: dict[str, torch.Tensor] = {}

    def prepare(
        self,
        measurements: Measurements,
        state: ReconstructionState,
        distribution: Distribution | None = None,
        seed: int = 0,
    ) -> None:
        super().prepare(measurements, state, distribution, seed)
        self._buffers = {
            "object": state.object[0].clone(),
            "object_v": torch.zeros_like(state.object[0]),
            "probe": state.probe.clone(),
            "probe_v": torch.zeros_like(state.probe),
        }

    def every_positions_hook(self, obj: torch.Tensor, probe: torch.Tensor) -> None:
        """The momentum step (eqs. 8-9): ``v <- eta v + (x - x_buf)``, ``x += gamma_m v``."""
        eta, gamma = float(self.config.friction), float(self.config.feedback)
        b = self._buffers
        for x, key in ((obj, "object"), (probe, "probe")):
            v = b[key + "_v"]
            if self.fused and pie_kernels.usable(x, v, b[key]):
                flat = [t.numpy().reshape(-1) for t in (x, b[key], v)]
                pie_kernels.kernels().momentum(*flat, eta, gamma)
                continue
            v.mul_(eta).add_(x).sub_(b[key])
            x.add_(v, alpha=gamma)
            b[key].copy_(x)

    def sweep_step(self, epoch: int) -> EpochReport:
        """One mPIE sweep; the momentum buffers roll with the probe centring."""
        cfg = self.config
        centre, cfg.center_probe = cfg.center_probe, False
        try:
            report = super().sweep_step(epoch)
        finally:
            cfg.center_probe = centre
        if centre:
            assert self.state is not None
            sy, sx = center_probe(self.state)
            if sy or sx:
                for t in self._buffers.values():
                    t.copy_(torch.roll(t, (sy, sx), dims=(-2, -1)))
        return report

    def state_dict(self) -> dict[str, Any]:
        """Return the momentum buffers (and the prior's state)."""
        return {**super().state_dict(), **{k: v.clone() for k, v in self._buffers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        super().load_state_dict(state)
        for k, v in state.items():
            if k in self._buffers:
                self._buffers[k].copy_(v)
