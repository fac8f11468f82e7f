"""Let the probe vary along the scan: orthogonal probe relaxation (OPR).

Odstrcil, Baksh, Boden, Card, Chad, Frey & Brocklesby, "Ptychographic coherent diffractive
imaging with orthogonal probe relaxation", Opt. Express 24, 8360 (2016): the probes of all
positions, stacked as the rows of a matrix ``[N, M N]``, are kept of low rank ``K`` (the
paper relaxes them to their truncated SVD after every iteration)::

    P_j = sum_k w_jk U_k          (eigen-probes U [K, M, N], weights w [N, K])

Here the rank-``K`` form is the state itself (never the ``N`` full probes), on the first
incoherent mode; the other incoherent modes stay shared by all positions. The gauge:
``w_j0 = 1`` for every position, so ``U_0`` is the mean probe and ``U_1 .. U_{K-1}`` (with
weights of zero mean) are the variations::

    P_j = U_0 + sum_{k >= 1} w_jk U_k

Per visit (``add_probe_step``), with the engine's probe step ``d_j`` for position ``j`` (its
ePIE/rPIE/... step on mode 0, shifted back to the window grid). Before sweep ``start`` (and
always with ``K = 1``) the step is the shared probe's, ``U_0 <- U_0 + d_j``; from ``start`` on
it is split over the factors (their part moves ``P_j`` by exactly ``d_j``), and the weights take
the projection of the step on each variation::

    U_k  <- U_k + conj(w_jk) d_j / sum_l |w_jl|^2           (k >= 0, w before this visit)
    w_jk <- w_jk + gamma <U_k, d_j> / ||U_k||^2             (k >= 1, U before this visit)

(``<A, B> = sum conj(A) B``, complex weights, ``gamma = weight_step``). With ``K = 1`` the
rule is the shared probe's exactly. A batch (``add_probe_steps``) sums the same updates over
its positions. Before ``start`` the variations do not learn: the seed weights only fix the
first sweeps' gauge. (The buffer ``g`` of ``state_dict`` stays zero: a checkpoint field of
an earlier power step, kept so that checkpoints load.)

End of a sweep (``end_epoch``), the relaxation to orthogonal form (the paper's truncated
SVD, computed on the factors; with ``weight_smoothing`` the weight columns are first fitted
by a polynomial in scan time)::

    w_jk <- w_jk - mean_j w_jk;   U_0 <- U_0 + sum_k (mean_j w_jk) U_k   (P_j unchanged)
    W_v U_v = A S (Q B)^H  ->  w_v = sqrt(N) A,  U_v = S (Q B)^H / sqrt(N)

with ``U_v = R^H Q^H`` the thin QR of the variations ``U_v^H`` (``[K - 1, MN]``) and
``W_v R^H = A S B^H`` the SVD of ``[N, K - 1]``: the variations become orthogonal, sorted by
power, with weight columns of mean square 1, and every ``P_j`` is unchanged. A direction of
zero power keeps weights 0 and a small eigen-probe (``init_scale``) so that the next sweep's
projections can grow it. The frame's ``probe[0]`` is set to ``U_0`` (reports, centring).
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


def orthogonalise(
    u: torch.Tensor, w: torch.Tensor, floor: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(U', w')`` with ``w' U' = w U`` and ``U'`` orthogonal by power.

    ``u`` ``[K, M, N]``, ``w`` ``[N_pos, K]`` complex (the variations; module docstring).
    Directions without power (an eigen-probe norm at most ``1e-6 floor``) get weights 0 and
    an eigen-probe of norm ``floor`` along the orthonormal basis. Computed in complex128.
    """
    k, m, n = u.shape
    npos = w.shape[0]
    uf = u.reshape(k, m * n).to(torch.complex128)
    q, r = torch.linalg.qr(uf.conj().T)  # uf = r^H q^H
    a, s, bh = torch.linalg.svd(w.to(torch.complex128) @ r.conj().T, full_matrices=False)
    root = math.sqrt(npos)
    basis = bh @ q.conj().T  # [K, MN] orthonormal rows
    norms = s / root
    dead = norms <= 1e-6 * floor
    w_new = torch.where(dead[None, :], torch.zeros_like(a), a * root)
    u_new = torch.where(dead, torch.full_like(norms, floor), norms).to(torch.complex128)
    u_new = u_new[:, None] * basis
    return u_new.reshape(k, m, n).to(u.dtype), w_new.to(w.dtype)


def seed_weights(n: int, k: int) -> torch.Tensor:
    """Return the starting weights ``[N, K]``: ``w_j0 = 1``, ``w_jk = sqrt(2) cos(pi k t_j)``.

    ``t_j = (j + 1/2) / N`` in scan order: zero-mean, orthogonal columns of mean square 1,
    smooth in time, so that the first power steps pick the steps' components that drift
    along the scan (any other variation is found by the later steps; deterministic).
    """
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    cols = [torch.ones(n, dtype=torch.float64)]
    cols += [math.sqrt(2.0) * torch.cos(math.pi * i * t) for i in range(1, k)]
    return torch.stack(cols, dim=1).to(torch.complex128)


def smooth_in_time(w: torch.Tensor, degree: int) -> torch.Tensor:
    """Return each column of ``w`` ``[N, K]`` fitted by a polynomial of ``degree`` in scan time.

    Least squares on Legendre polynomials of ``2 t - 1`` (``t = (j + 1/2) / N``): the prior
    that the probe drifts smoothly along the scan (pty-chi's polynomial weight smoothing).
    """
    n = w.shape[0]
    x = (2.0 * (torch.arange(n, dtype=torch.float64) + 0.5) / n - 1.0).numpy()
    basis = torch.from_numpy(np.polynomial.legendre.legvander(x, min(degree, n - 1)))
    coef = torch.linalg.lstsq(basis.to(torch.complex128), w.to(torch.complex128)).solution
    return (basis.to(torch.complex128) @ coef).to(w.dtype)


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
        self.g = torch.zeros(0)
        self._floor = 0.0

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
        self.w = seed_weights(n, k).to(dtype=probe.dtype, device=probe.device)
        self.g = torch.zeros_like(self.u[1:])
        self._floor = float(self.config.init_scale) * float((self.u[0].abs() ** 2).sum().sqrt())
        self._w_start = self.w.clone()

    def begin_epoch(self, epoch: int, ctx: FrameView | None = None) -> None:
        """Switch the weight updates on from sweep ``start``."""
        self.weights_on = epoch >= int(self.config.start)
        self._w_start = self.w.clone()

    def probe_for(self, j: int, probe: torch.Tensor | None = None) -> torch.Tensor:
        """Return position ``j``'s probe ``[K_inc, M, N]``: mode 0 ``sum_k w_jk U_k``
        (``w_j0 = 1``); ``probe``: the shared modes (default: the frame's probe)."""
        probe = self._shared(probe)
        mode0 = torch.einsum("k,kmn->mn", self.w[j], self.u)
        if probe.shape[0] == 1:
            return mode0[None]
        return torch.cat([mode0[None], probe[1:]])

    def probes_for(self, idx: torch.Tensor, probe: torch.Tensor | None = None) -> torch.Tensor:
        """Return the probes ``[B, K_inc, M, N]`` of positions ``idx``."""
        probe = self._shared(probe)
        mode0 = torch.einsum("bk,kmn->bmn", self.w[idx], self.u)
        rest = probe[1:].unsqueeze(0).expand(mode0.shape[0], *probe[1:].shape)
        return torch.cat([mode0[:, None], rest], dim=1)

    def add_probe_step(self, j: int, step: torch.Tensor, probe: torch.Tensor | None = None) -> None:
        """Apply position ``j``'s probe step ``[K_inc, M, N]`` (module docstring)."""
        self.add_probe_steps(torch.tensor([j]), step[None], probe)

    def add_probe_steps(
        self, idx: torch.Tensor, steps: torch.Tensor, probe: torch.Tensor | None = None
    ) -> None:
        """Apply the probe steps ``[B, K_inc, M, N]`` of positions ``idx`` (summed)."""
        probe = self._shared(probe)
        d = steps[:, 0]  # [B, M, N]
        if self.u.shape[0] == 1 or not self.weights_on:
            self.u[0] += d.sum(0)
        else:
            wb = self.w[idx]  # [B, K], before this visit
            norm = (wb.real.square() + wb.imag.square()).sum(1)  # [B]
            v = self.u[1:]
            v2 = (v.real.square() + v.imag.square()).sum((-2, -1)).clamp_min(1e-30)
            coef = torch.einsum("kmn,bmn->bk", v.conj(), d) / v2[None, :]
            self.u += torch.einsum("bk,bmn->kmn", wb.conj() / norm[:, None].to(wb.dtype), d)
            self.w[:, 1:].index_add_(0, idx, coef * float(self.config.weight_step))
        if steps.shape[1] > 1:
            probe[1:] += steps[:, 1:].sum(0)

    def allreduce(self, distribution: Any) -> None:
        """Combine the ranks: ``U_0`` averaged (as the shared probe), ``G`` summed, the weight
        rows summed as changes (each rank moves only its own positions' rows)."""
        if getattr(distribution, "size", 1) > 1:
            distribution.allreduce_mean_(self.u)
            distribution.allreduce_sum_(self.g)
            delta = self.w - self._w_start
            distribution.allreduce_sum_(delta)
            self.w = self._w_start + delta

    def end_epoch(self, epoch: int, ctx: FrameView | None = None) -> dict[str, float]:
        """Power step and orthogonalisation of the variations; ``probe[0] = U_0``."""
        k = self.u.shape[0]
        if k > 1:
            w = self.w[:, 1:]
            deg = int(self.config.weight_smoothing)
            if deg > 0:
                w = smooth_in_time(w, deg)
            mean = w.mean(0)
            self.u[0] += torch.einsum("k,kmn->mn", mean, self.u[1:])
            w = w - mean[None, :]
            self.u[1:], self.w[:, 1:] = orthogonalise(self.u[1:], w, self._floor)
        self.g = torch.zeros_like(self.u[1:])
        if self._probe is not None:
            self._probe[0] = self.u[0]
        mean_power = float((self.u[0].abs() ** 2).sum())
        var_power = (self.u[1:].abs() ** 2).sum((-2, -1)) * (self.w[:, 1:].abs() ** 2).mean(0)
        out = {f"opr_power_{i + 1}": float(p) / mean_power for i, p in enumerate(var_power)}
        return out

    def on_roll(self, sy: int, sx: int) -> None:
        """Roll the eigen-probes with the frame's probe and object."""
        self.u = torch.roll(self.u, shifts=(sy, sx), dims=(-2, -1))

    def _shared(self, probe: torch.Tensor | None) -> torch.Tensor:
        if probe is not None:
            return probe
        if self._probe is None:
            raise RuntimeError("ProbeVariation: call prepare(ctx) first")
        return self._probe

    def mean_probe(self) -> torch.Tensor:
        """Return ``sum_k mean_j(w_jk) U_k`` ``[M, N]`` (``U_0`` after ``end_epoch``)."""
        return torch.einsum("k,kmn->mn", self.w.mean(0), self.u)

    def state_dict(self) -> dict[str, Any]:
        """Return the eigen-probes and weights (a resume continues bit for bit)."""
        return {"eigen_probes": self.u.clone(), "weights": self.w.clone(), "g": self.g.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict``."""
        self.u = torch.as_tensor(state["eigen_probes"]).clone()
        self.w = torch.as_tensor(state["weights"]).clone()
        self.g = torch.as_tensor(state["g"]).clone()
        self._w_start = self.w.clone()

    def results(self) -> dict[str, np.ndarray]:
        """Return ``eigen_probes`` ``[K, M, N]`` and ``probe_weights`` ``[N, K]``."""
        return {
            "eigen_probes": self.u.detach().cpu().numpy(),
            "probe_weights": self.w.detach().cpu().numpy(),
        }
