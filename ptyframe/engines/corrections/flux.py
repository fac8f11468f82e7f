"""Refine a flux scalar per pattern: the source's intensity fluctuates from exposure to exposure.

Model: pattern ``j`` was recorded with amplitude factor ``c_j`` (intensity ``c_j^2``), so its
modelled far-field modulus is ``c_j A_j`` with ``A_j = sqrt(sum_k |Psi_jk|^2)`` made from the
shared object and probe. The frame's modulus step fits ``A_j`` to ``a_j / c_j`` (measured
amplitude over the flux); each visit also returns the two sums::

    s_aA = sum_q a_j(q) A_j(q),      s_AA = sum_q A_j(q)^2        (measured pixels q)

whose ratio is the least-squares flux of the visit, ``argmin_c sum_q |c A_j - a_j|^2``::

    c_j^* = s_aA / s_AA

(elementary least squares in the amplitude domain, the domain of the modulus projection
that every fast engine uses; no more than one scalar per pattern is fitted, so the object and
probe still explain every pattern's structure).

Per sweep (``end_epoch``), from sweep ``start``, for the patterns visited::

    c_j <- c_j + step (c_j^* - c_j),      then   c <- c / sqrt(mean_j c_j^2)

The product (flux x probe power) is invisible in the data; fixing ``mean c^2 = 1`` gives the
probe the mean flux. ``results()['flux']`` is ``c^2`` (an intensity factor, as the
simulation's ``/truth/flux``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ptyframe.engines.corrections.base import FrameView, n_positions
from ptyframe.engines.corrections.config import FluxConfig


def flux_sums(
    measured: torch.Tensor, model: torch.Tensor, valid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(sum a A, sum A^2)`` over the last two axes (``[..., M, N]`` -> ``[...]``).

    ``measured`` the amplitudes ``a``, ``model`` the moduli ``A`` (without the flux), ``valid``
    the measured pixels (None: all), all float; sums in float64.
    """
    a = measured.to(torch.float64)
    m = model.to(torch.float64)
    if valid is not None:
        v = valid.to(torch.float64)
        a, m = a * v, m * v
    return (a * m).sum((-2, -1)), (m * m).sum((-2, -1))


class FluxCorrection:
    """A flux scalar per pattern; a ``Correction`` of the engine frame (module docstring)."""

    name = "flux"

    def __init__(self, config: FluxConfig | None = None) -> None:
        self.config = config or FluxConfig(refine=True)
        self.scale = np.ones(0)
        self.sums = np.zeros((0, 2))
        self.active = False

    def prepare(self, ctx: FrameView) -> None:
        """Start every pattern at the mean flux (``c_j = 1``)."""
        n = n_positions(ctx)
        self.scale = np.ones(n)
        self.sums = np.zeros((n, 2))

    def begin_epoch(self, epoch: int, ctx: FrameView | None = None) -> None:
        """Clear the sums; they count from sweep ``start`` on."""
        self.sums.fill(0.0)
        self.active = epoch >= int(self.config.start)

    def factor(self, j: int) -> float:
        """Return ``c_j``: the modulus step fits ``A_j`` to ``a_j / c_j``."""
        return float(self.scale[j])

    def factors(self, idx: torch.Tensor | np.ndarray) -> np.ndarray:
        """Return ``c`` ``[B]`` of positions ``idx``."""
        return self.scale[np.asarray(idx)]

    def observe(self, idx: int | torch.Tensor | np.ndarray, s_aa: Any, s_a2: Any) -> None:
        """Add one visit's (or a batch's) ``sum a A`` and ``sum A^2``."""
        if not self.active:
            return
        if isinstance(idx, int):
            self.sums[idx, 0] += float(s_aa)
            self.sums[idx, 1] += float(s_a2)
            return
        i = np.asarray(torch.as_tensor(idx).cpu())
        np.add.at(self.sums[:, 0], i, np.asarray(torch.as_tensor(s_aa).cpu(), dtype=np.float64))
        np.add.at(self.sums[:, 1], i, np.asarray(torch.as_tensor(s_a2).cpu(), dtype=np.float64))

    def allreduce(self, distribution: Any) -> None:
        """Sum the sums over ranks."""
        if getattr(distribution, "size", 1) > 1:
            distribution.allreduce_sum_(torch.from_numpy(self.sums))

    def end_epoch(self, epoch: int, ctx: FrameView | None = None) -> dict[str, float]:
        """Move each visited ``c_j`` towards its least-squares value; renormalise."""
        if not self.active:
            return {}
        seen = self.sums[:, 1] > 0
        best = np.where(seen, self.sums[:, 0] / np.where(seen, self.sums[:, 1], 1.0), 1.0)
        step = float(self.config.step)
        self.scale = np.where(seen, self.scale + step * (best - self.scale), self.scale)
        self.scale = np.clip(self.scale, 1e-6, None)
        self.scale = self.scale / np.sqrt(np.mean(self.scale**2))
        return {"flux_rms": float(np.std(self.scale**2))}

    def on_roll(self, sy: int, sx: int) -> None:
        """Nothing: the flux does not depend on where the probe sits."""

    def state_dict(self) -> dict[str, Any]:
        """Return the scalars (a resume continues bit for bit)."""
        return {"flux_scale": self.scale.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict``."""
        self.scale = np.asarray(state["flux_scale"], dtype=np.float64).copy()

    def results(self) -> dict[str, np.ndarray]:
        """Return ``flux`` ``[N]``: the intensity factor ``c_j^2`` of each pattern (mean 1)."""
        return {"flux": self.scale**2}
