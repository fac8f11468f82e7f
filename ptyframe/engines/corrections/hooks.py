"""Build the corrections an engine config asks for, and the calls the sweeps make into them.

The frame (``ptyframe.engines.frame``) builds the list of corrections from the engine's
config (``build_corrections``; an engine whose ``Capabilities`` do not declare one is refused
by ``check_capabilities``, before anything is built or written) and hands the sweeps one
``SweepHooks``. A sweep calls it at three points of a visit ``j`` (the pipeline of
``ptyframe.engines.sequential``)::

    P_j   <- hooks.probe(j, probe, scan)           OPR: sum_k w_jk U_k, shifted by frac_j
    a_j   <- hooks.amplitudes(j, Psi, a_j, v_j)     flux: a_j / c_j (and the flux sums)
    ...   the modulus step, chi = F^-1 (Psi' - Psi)
    hooks.observe(j, O_j, P_j, chi)                 the position sums (before the update)
    hooks.add_probe_step(j, step, probe, scan)      OPR: the probe step, shifted back

and the batched sweeps ``observe(idx, O_b, P_b, chi_b)``. The maths of each correction is in
its module (``positions``, ``opr``, ``flux``); this module only routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ptyframe.engines.corrections.config import corrections_asked
from ptyframe.engines.corrections.flux import FluxCorrection
from ptyframe.engines.corrections.opr import ProbeVariation
from ptyframe.engines.corrections.positions import PositionCorrection
from ptyframe.errors import ConfigError
from ptyframe.physics.subpixel import shift_each

if TYPE_CHECKING:
    from ptyframe.engines.base import Capabilities
    from ptyframe.engines.corrections.base import Correction
    from ptyframe.engines.scan import ScanWindows

#: The spelling of each correction on the command line (for the refusal's message).
SPELLING = {
    "positions": "engine.refine.positions=true",
    "probe_variation": "engine.probe_variation.modes",
    "flux": "engine.flux.refine=true",
}


def check_capabilities(engine: str, capabilities: Capabilities, config: Any) -> None:
    """Raise ``ConfigError`` (one line) if ``config`` asks for a correction that the engine
    ``engine``'s ``capabilities`` do not declare."""
    for name in corrections_asked(config):
        if not bool(getattr(capabilities, name)):
            raise ConfigError(
                f"engine {engine} does not refine {name.replace('_', ' ')} "
                f"({SPELLING[name]}); remove it, or use an engine that does (epie, rpie, "
                "mpie, pine, minibatch_pie, lsqml: positions; the PIE family: all three)"
            )


def build_corrections(config: Any) -> list[Correction]:
    """Return the corrections ``config`` switches on, in the order their ``end_epoch`` runs:
    flux, probe variation, positions (the positions move last, with the epoch's object)."""
    asked = corrections_asked(config)
    out: list[Correction] = []
    if "flux" in asked:
        out.append(FluxCorrection(config.flux))
    if "probe_variation" in asked:
        out.append(ProbeVariation(config.probe_variation))
    if "positions" in asked:
        out.append(PositionCorrection(config.positions))
    return out


class SweepHooks:
    """The per-visit calls of the sweeps into the run's corrections (module docstring)."""

    def __init__(self, corrections: list[Correction]) -> None:
        self.positions: PositionCorrection | None = None
        self.opr: ProbeVariation | None = None
        self.flux: FluxCorrection | None = None
        for c in corrections:
            if isinstance(c, PositionCorrection):
                self.positions = c
            elif isinstance(c, ProbeVariation):
                self.opr = c
            elif isinstance(c, FluxCorrection):
                self.flux = c

    @property
    def numba_covers(self) -> bool:
        """Whether the fused numba sweep runs these hooks (position sums only)."""
        return self.opr is None and self.flux is None

    def position_sums(self) -> np.ndarray | None:
        """Return the ``[N, 5]`` float64 sums the numba kernels add into, or None (off or
        before the correction's start)."""
        p = self.positions
        return p.sums if p is not None and p.active else None

    def observe(
        self,
        idx: int | torch.Tensor,
        o_window: torch.Tensor,
        probes: torch.Tensor,
        chi: torch.Tensor,
    ) -> None:
        """Add a visit's (``o [M, N]``, ``P [K, M, N]``, ``chi [K, M, N]``) or a batch's
        (``[B, ...]``) position sums (``positions.position_sums``)."""
        if self.positions is not None:
            self.positions.observe(idx, o_window, probes, chi)

    def probe(self, j: int, probe: torch.Tensor, scan: ScanWindows) -> torch.Tensor:
        """Return position ``j``'s probe ``T_f_j P_j`` ``[K, M, N]`` (OPR's, shifted)."""
        assert self.opr is not None
        base = self.opr.probe_for(j, probe)
        if not scan.shifted_at[j]:
            return base
        return shift_each(base[None], scan.frac[j : j + 1])[0]

    def add_probe_step(
        self, j: int, step: torch.Tensor, probe: torch.Tensor, scan: ScanWindows
    ) -> None:
        """Give OPR position ``j``'s probe step ``[K, M, N]`` (shifted back by ``T_-f_j``)."""
        assert self.opr is not None
        if scan.shifted_at[j]:
            step = shift_each(step[None], -scan.frac[j : j + 1])[0]
        self.opr.add_probe_step(j, step, probe)

    def amplitudes(
        self, j: int, wave: torch.Tensor, a: torch.Tensor, v: torch.Tensor | None
    ) -> tuple[torch.Tensor, float]:
        """Return ``(a_j / c_j, c_j)`` and add the visit's flux sums ``sum a A``, ``sum A^2``
        (``flux``; ``wave`` ``[K, M, N]`` the far field, ``a`` ``[1, M, N]``)."""
        if self.flux is None:
            return a, 1.0
        model = (wave.real.square() + wave.imag.square()).sum(0).sqrt()
        meas = a[0] if v is None else a[0] * v[0]
        mod = model if v is None else model * v[0]
        self.flux.observe(
            int(j), float((meas * mod).sum(dtype=torch.float64)), float(mod.square().sum())
        )
        c = self.flux.factor(int(j))
        return a / c, c
