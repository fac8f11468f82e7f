"""Let the probe vary along the scan: orthogonal probe relaxation (OPR).

Odstrcil, Baksh, Boden, Card, Chad, Frey & Brocklesby, "Ptychographic coherent diffractive
imaging with orthogonal probe relaxation", Opt. Express 24, 8360 (2016): the probes of all
positions, stacked as the rows of a matrix ``[N, M N]``, are kept of low rank ``K``::

    P_j = sum_k w_jk U_k          (eq. 6: eigen-probes U [K, M, N], weights w [N, K])

Here the rank-``K`` form is the state itself (never the ``N`` full probes), on the first
incoherent mode; the other incoherent modes stay shared by all positions.

Per visit (``add_probe_step``): the engine's rule proposes a probe step ``d_j`` for position
``j`` (its ePIE/rPIE/... probe step, mode 0, shifted back to the window grid). It goes into
the eigen-probes and the weights as one stochastic step of the least-squares factorisation
``min sum_j || P_j + d_j - sum_k w_jk U_k ||^2`` (the sequential form of the paper's
truncated-SVD relaxation, eqs. 7-8)::

    U_k  <- U_k  + conj(w_jk) d_j / sum_k |w_jk|^2            (position j gets exactly d_j)
    w_jk <- w_jk + gamma <U_k, d_j> / ||U_k||^2                 (projection on each U_k)

(``<A, B> = sum conj(A) B``; the weights are complex; ``gamma = weight_step``; ``U`` of the
weight step is the one before this visit). With ``K = 1`` and ``w = 1`` the first line is
the shared probe's step exactly, so OPR with weights off is the plain engine. A batch
(``add_probe_steps``) sums the same updates over its positions, from the ``U`` and ``w``
before the batch.

End of a sweep (``end_epoch``): orthogonalise without changing any ``P_j`` (the SVD of the
paper's eq. 8, on the factors): with ``U = R^H Q^H`` (thin QR of ``U^H``, ``U`` as ``[K, MN]``)
and ``W R^H = A S B^H`` (SVD, ``[N, K]``)::

    W U = A S (Q B)^H  ->  w = sqrt(N) A,   U = S (Q B)^H / sqrt(N)

so the eigen-probes are orthogonal, sorted by power, each column of ``w`` has mean square 1,
and ``U_0`` is the dominant (mean) probe; each column's phase is fixed so that
``sum_j w_jk`` is real and positive (where it is not ~0). The frame's ``probe[0]`` is then set
to the mean probe ``sum_k mean_j(w_jk) U_k`` (for the reports and the probe centring).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ptyframe.engines.corrections.base import FrameView, n_positions
from ptyframe.engines.corrections.config import ProbeVariationConfig
from ptyframe.errors import ConfigError


def initial_eigenprobes(probe0: torch.Tensor, k: int, scale: float) -> torch.Tensor:
    """Return ``U`` ``[K, M, N]``: ``U_0 = probe0``, ``U_k`` small orthogonal variations of it.

    ``U_k`` (k >= 1) is ``probe0 u^a v^b`` (``u, v`` the centred pixel coordinates over the
    probe's rms radius, ``(a, b)`` by increasing degree), Gram-Schmidt orthogonalised against
    the earlier ones and scaled to ``scale ||probe0||``. Deterministic (no random numbers).
    """
    m, n = probe0.shape
    p0 = probe0.to(torch.complex128)
    power = float((p0.abs() ** 2).sum())
    if not power > 0:
        raise ConfigError("engine.probe_variation: the initial probe has no power")
    inten = p0.abs() ** 2
    iy = torch.arange(m, dtype=torch.float64)[:, None]
    ix = torch.arange(n, dtype=torch.float64)[None, :]
    cy, cx = float((iy * inten).sum()) / power, float((ix * inten).sum()) / power
    r2 = ((iy - cy) ** 2 + (ix - cx) ** 2) * inten
    s = math.sqrt(float(r2.sum()) / power) or 1.0
    u, v = (iy - cy) / s, (ix - cx) / s
    basis = [p0 / math.sqrt(power)]
    degree = 1
    while len(basis) < k:
        for a in range(degree, -1, -1):
            if len(basis) == k:
                break
            cand = p0 * u**a * v ** (degree - a)
            for _ in range(2):
                for b in basis:
                    cand = cand - (b.conj() * cand).sum() * b
            norm = float(cand.abs().square().sum().sqrt())
            if norm > 1e-8:
                basis.append(cand / norm)
        degree += 1
    out = torch.stack(basis) * math.sqrt(power)
    out[1:] *= scale
    return out.to(probe0.dtype)


def orthogonalise(u: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(U', w')`` with ``w' U' = w U``, ``U'`` orthogonal by power (module docstring).

    ``u`` ``[K, M, N]``, ``w`` ``[N_pos, K]`` complex. Computed in complex128.
    """
    k, m, n = u.shape
    npos = w.shape[0]
    uf = u.reshape(k, m * n).to(torch.complex128)
    q, r = torch.linalg.qr(uf.conj().T)  # uf = r^H q^H
    a, s, bh = torch.linalg.svd(w.to(torch.complex128) @ r.conj().T, full_matrices=False)
    root = math.sqrt(npos)
    w_new = a * root
    u_new = (s / root).to(torch.complex128)[:, None] * (bh @ q.conj().T)
    total = w_new.sum(0)
    big = total.abs() > 1e-6 * npos
    phase = torch.where(big, total / total.abs().clamp_min(1e-300), torch.ones_like(total))
    w_new = w_new * phase.conj()[None, :]
    u_new = u_new * phase[:, None]
    return u_new.reshape(k, m, n).to(u.dtype), w_new.to(w.dtype)


class ProbeVariation:
    """Orthogonal probe relaxation; a ``Correction`` of the engine frame (module docstring)."""

    name = "probe_variation"

    def __init__(self, config: ProbeVariationConfig) -> None:
        self.config = config
        self.u = torch.zeros(0)
        self.w = torch.zeros(0)
        self.weights_on = False
        self._probe: torch.Tensor | None = None
        self._w_start = torch.zeros(0)

    # ---------------------------------------------------------------- frame protocol
    def prepare(self, ctx: FrameView) -> None:
        """Start from the frame's probe: ``U_0 = probe[0]``, ``w_j = (1, 0, ..., 0)``."""
        k = int(self.config.modes)
        n = n_positions(ctx)
        if k < 1:
            raise ConfigError("engine.probe_variation.modes = 0 is off; build no ProbeVariation")
        if k > n:
            raise ConfigError(
                f"engine.probe_variation.modes = {k} exceeds the {n} patterns of the scan (at "
                f"most one eigen-probe per pattern); choose modes <= {n}, typically 2-5"
            )
        probe = ctx.probe
        self._probe = probe
        self.u = initial_eigenprobes(probe[0], k, float(self.config.init_scale)).to(probe.device)
        self.w = torch.zeros((n, k), dtype=probe.dtype, device=probe.device)
        self.w[:, 0] = 1.0
        self._w_start = self.w.clone()

    def begin_epoch(self, epoch: int, ctx: FrameView | None = None) -> None:
        """Switch the weight updates on from sweep ``start``."""
        self.weights_on = epoch >= int(self.config.start)
        self._w_start = self.w.clone()

    def probe_for(self, j: int, probe: torch.Tensor) -> torch.Tensor:
        """Return position ``j``'s probe ``[K_inc, M, N]``: mode 0 ``sum_k w_jk U_k``."""
        mode0 = torch.einsum("k,kmn->mn", self.w[j], self.u)
        if probe.shape[0] == 1:
            return mode0[None]
        return torch.cat([mode0[None], probe[1:]])

    def probes_for(self, idx: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
        """Return the probes ``[B, K_inc, M, N]`` of positions ``idx``."""
        mode0 = torch.einsum("bk,kmn->bmn", self.w[idx], self.u)
        rest = probe[1:].unsqueeze(0).expand(mode0.shape[0], *probe[1:].shape)
        return torch.cat([mode0[:, None], rest], dim=1)

    def add_probe_step(self, j: int, step: torch.Tensor, probe: torch.Tensor) -> None:
        """Apply position ``j``'s probe step ``[K_inc, M, N]`` (module docstring)."""
        self.add_probe_steps(torch.tensor([j]), step[None], probe)

    def add_probe_steps(self, idx: torch.Tensor, steps: torch.Tensor, probe: torch.Tensor) -> None:
        """Apply the probe steps ``[B, K_inc, M, N]`` of positions ``idx`` (summed)."""
        d = steps[:, 0]  # [B, M, N]
        wb = self.w[idx]  # [B, K]
        norm = (wb.real.square() + wb.imag.square()).sum(1).clamp_min(1e-30)  # [B]
        if self.weights_on:
            u2 = (self.u.real.square() + self.u.imag.square()).sum((-2, -1)).clamp_min(1e-30)
            coef = torch.einsum("kmn,bmn->bk", self.u.conj(), d) / u2[None, :]
            self.w.index_add_(0, idx, coef * float(self.config.weight_step))
        self.u += torch.einsum("bk,bmn->kmn", wb.conj() / norm[:, None].to(wb.dtype), d)
        if steps.shape[1] > 1:
            probe[1:] += steps[:, 1:].sum(0)

    def allreduce(self, distribution: Any) -> None:
        """Average the eigen-probes over ranks (as the probe) and sum the weight rows.

        Each rank updates the weights of its own positions only; the frame calls this
        after the sweep. (Rows of other ranks' positions hold the values of the sweep's start
        on this rank: the sum of ``w - w_start`` over ranks is added back.)
        """
        if getattr(distribution, "size", 1) > 1:
            distribution.allreduce_mean_(self.u)
            delta = self.w - self._w_start
            distribution.allreduce_sum_(delta)
            self.w = self._w_start + delta

    def end_epoch(self, epoch: int, ctx: FrameView | None = None) -> dict[str, float]:
        """Orthogonalise; set the frame's ``probe[0]`` to the mean probe; report the spread."""
        self.u, self.w = orthogonalise(self.u, self.w)
        if self._probe is not None:
            self._probe[0] = self.mean_probe()
        power = (self.u.abs() ** 2).sum((-2, -1)) * (self.w.abs() ** 2).mean(0)
        share = power / power.sum().clamp_min(1e-300)
        out = {f"opr_power_{k}": float(share[k]) for k in range(1, self.u.shape[0])}
        out["opr_weight0_std"] = float(self.w[:, 0].abs().std()) if self.w.shape[0] > 1 else 0.0
        return out

    def on_roll(self, sy: int, sx: int) -> None:
        """Roll the eigen-probes with the frame's probe and object."""
        self.u = torch.roll(self.u, shifts=(sy, sx), dims=(-2, -1))

    def mean_probe(self) -> torch.Tensor:
        """Return ``sum_k mean_j(w_jk) U_k`` ``[M, N]``."""
        return torch.einsum("k,kmn->mn", self.w.mean(0), self.u)

    def state_dict(self) -> dict[str, Any]:
        """Return the eigen-probes and weights (a resume continues bit for bit)."""
        return {"eigen_probes": self.u.clone(), "weights": self.w.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict``."""
        self.u = torch.as_tensor(state["eigen_probes"]).clone()
        self.w = torch.as_tensor(state["weights"]).clone()
        self._w_start = self.w.clone()

    def results(self) -> dict[str, np.ndarray]:
        """Return ``eigen_probes`` ``[K, M, N]`` and ``probe_weights`` ``[N, K]``."""
        return {
            "eigen_probes": self.u.detach().cpu().numpy(),
            "probe_weights": self.w.detach().cpu().numpy(),
        }
