"""LSQML's exit-wave update for Poisson counts, and the real dot product its step sizes use.

Odstrcil, Menzel & Guizar-Sicairos, Opt. Express 26, 3108 (2018): the Poisson-optimal step
along ``Psi' - Psi`` (eqs. 12b, 17), found per position by a few Newton steps. The engine
(``ptyframe.engines.lsqml``) and the general visit (``ptyframe.engines.visit_sweeps``) share
them.
"""

from __future__ import annotations

import torch


def poisson_step(wave: torch.Tensor, inten: torch.Tensor, valid: torch.Tensor | None):
    """Return ``(Psi' - Psi, xi)`` of the Poisson exit-wave update (eqs. 12b, 17) per position.

    ``alpha_b`` minimises ``L(a) = sum_valid [A^2 (1 - a xi)^2 - I log(A^2 (1 - a xi)^2)]``.
    """
    a2 = (wave.real.square() + wave.imag.square()).sum(1)  # [B, M, N]
    lit = a2 > 0
    if valid is not None:
        lit &= valid
    xi = torch.where(lit, 1.0 - inten / a2.clamp_min(1e-30), 0.0)
    alpha = torch.full((wave.shape[0], 1, 1), 0.5, dtype=a2.dtype, device=a2.device)
    for _ in range(3):  # Newton on L(alpha)
        q = (1.0 - alpha * xi).clamp_min(1e-6)
        grad = (-2.0 * xi * a2 * q + 2.0 * inten * xi / q).sum(dim=(-2, -1), keepdim=True)
        hess = (2.0 * xi.square() * (a2 + inten / q.square())).sum(dim=(-2, -1), keepdim=True)
        alpha = (alpha - grad / hess.clamp_min(1e-30)).clamp_(0.0, 1.0)
    return wave * (-alpha * xi).unsqueeze(1), alpha.flatten()


def re_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return ``Re sum conj(a) b`` over all but the first axis, ``[B]``.

    ``Re(conj(a) b) = a_re b_re + a_im b_im``: the dot product of the real views, without
    complex temporaries (a product and a sum, faster on a CPU than a batched ``bmm`` of
    ``[1, L] x [L, 1]`` matrices).
    """
    ra = torch.view_as_real(a).reshape(a.shape[0], -1)
    rb = torch.view_as_real(b).reshape(b.shape[0], -1)
    return (ra * rb).sum(1)
