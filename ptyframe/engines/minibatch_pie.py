"""Run minibatch ("parallel") ePIE / rPIE: one update per group of positions.

For a group ``b in G`` every exit wave comes from the same ``O`` and ``P``
(``psi_b = S_b(O) T_f_b P``, ``ptyframe.engines.minibatch``); one batched projection
(the rule of ``ptyframe.physics.projection``, fused in ``ptyframe.engines.minibatch_delta``)
gives ``chi_b = F^-1 (Psi'_b - Psi_b) = psi'_b - psi_b``. The per-position
ePIE/rPIE steps (``ptyframe.engines.pie``) are summed over the group with their weights
summed too, i.e. with ``W_O = sum_b S_b^T sum_k |P_bk|^2`` and ``W_P = sum_b |O_b|^2``::

    N_O = sum_b S_b^T sum_k conj(P_bk) chi_bk        N_P = sum_b T_-f_b [conj(O_b) chi_b]

    ePIE:  O += alpha N_O / max W_O                  P += beta N_P / max W_P
    rPIE:  O += N_O / ((1-alpha) W_O + alpha max W_O)
           P += N_P / ((1-beta)  W_P + beta  max W_P)

For a group of one position this is the sequential ePIE (PINE paper eqs. 18-19) or rPIE
(Maiden, Johnson & Li, Optica 4, 736 (2017), eq. 6) step exactly; for a whole-scan group the
rPIE form is the Jacobi-preconditioned (averaged) gradient step of the PIE family's parallel
variants. ``batching``: ``random``, ``compact`` or ``sparse`` groups (``minibatch``);
``momentum`` > 0 adds the per-epoch momentum of ``MinibatchEngine._epoch_momentum``.

Defaults: ``rule = epie``, ``alpha = beta = 0.25`` (ePIE's), ``sparse`` groups of at most
16. In a sparse group no two windows share a pixel, so ``W_O`` is one window's ``|P|^2``
and every position takes exactly its sequential ePIE object step; the probe takes the
group's mean step. In a ``random`` group one overlap anywhere doubles ``max W_O`` and halves
every position's ePIE step, and in ``compact`` (clustered) groups the step becomes an average
over many overlaps, both slower. Chosen with ``benchmarks/engine_tuning.py`` (the manual's
results pages hold the figures).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ptyframe.engines.base import Capabilities, check_range
from ptyframe.engines.config import PIE_RULES, MinibatchConfig, check_pie_steps
from ptyframe.engines.minibatch import MinibatchEngine, check_batching, mode_sum, scatter_windows
from ptyframe.engines.rules import summed_pie_step
from ptyframe.errors import ConfigError
from ptyframe.physics.fft import far_field, far_field_adjoint


@dataclass
class MinibatchPieConfig(MinibatchConfig):
    """Minibatch ePIE/rPIE: the summed PIE steps of a group of positions (defaults: module
    docstring)."""

    name: str = "minibatch_pie"
    rule: str = "epie"
    alpha: float = 0.25
    beta: float = 0.25
    batch_size: int = 16
    batching: str = "sparse"
    #: Momentum on each epoch's change (0 = none; ``MinibatchEngine._epoch_momentum``).
    momentum: float = 0.0
    friction: float = 0.9

    def __post_init__(self) -> None:
        if self.rule not in PIE_RULES:
            raise ConfigError(f"minibatch_pie.rule = {self.rule!r}; choose epie or rpie")
        super().__post_init__()
        check_batching("minibatch_pie", self.batching, self.batch_size)
        check_range(
            "minibatch_pie", "momentum", self.momentum, 0.0, 2.0, lo_open=False, hi_open=True
        )
        check_range(
            "minibatch_pie", "friction", self.friction, 0.0, 1.0, lo_open=False, hi_open=True
        )
        check_pie_steps("minibatch_pie", self.rule, self.alpha, self.beta)


class MinibatchPieEngine(MinibatchEngine):
    """Minibatch ePIE/rPIE; see the module docstring."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        positions=True, backends=("torch", "numba"), streams=True
    )
    config: MinibatchPieConfig

    def __init__(self, config: MinibatchPieConfig, context: Any | None = None) -> None:
        super().__init__(context)
        self.config = config

    def update_batch(self, idx: torch.Tensor, update_probe: bool) -> float:
        """One group's update (module docstring); return its error numerator."""
        state, cfg = self.state, self.config
        assert state is not None
        obj, probe = state.object[0], state.probe
        o_b = self.waves.patches(obj, idx)  # [B, M, N]
        ramps = self.waves.ramps(idx, probe)  # [B, 1, M, N] or None (integer positions)
        p_b = self.waves.probes(probe, idx, ramps)  # [B, K, M, N]
        psi = o_b.unsqueeze(1) * p_b
        amps, valid = self.data(idx)
        delta, err = self.detector_step(far_field(psi), amps, valid)
        chi = far_field_adjoint(delta)  # F^-1 (Psi' - Psi) = psi' - psi
        if self.hooks is not None:
            self.hooks.observe(idx, o_b, p_b, chi)  # the position sums (before the update)
        corners = self.waves.corners_of(idx, obj.device)
        if update_probe:
            n_p = self.waves.shift_back_sum(o_b.conj().unsqueeze(1) * chi, idx, ramps)
            w_p = (o_b.real.square() + o_b.imag.square()).sum(0)
        n_o = torch.zeros_like(obj)
        w_o = torch.zeros_like(obj.real)
        scatter_windows(n_o, mode_sum(p_b.conj() * chi), corners)
        scatter_windows(w_o, mode_sum(p_b.real.square() + p_b.imag.square()), corners)
        rpie = cfg.rule == "rpie"
        obj.add_(summed_pie_step(n_o, w_o, float(cfg.alpha), rpie))
        if update_probe:
            probe.add_(summed_pie_step(n_p, w_p, float(cfg.beta), rpie))
        return float(err.sum())
