"""Measure the local Lipschitz constant of the map PINE applies, complex object in and out.

``applied_jacobian_norm(den, obj)`` returns ``||J||`` of ``O -> den(O)`` at ``obj``, with
``C^n`` read as ``R^{2n}`` (``torch.view_as_real``) and ``den`` a ``ComplexDenoiser`` (the
normalisation included), by power iteration on ``J^T J`` with forward- and reverse-mode
autodiff (``torch.func.jvp`` / ``vjp``). It is a lower bound of the global constant and
converges to the local one; compare it with the certified bound (``models.denoiser_bound``).
"""

from __future__ import annotations

import torch

from ptyframe.denoise.apply import ComplexDenoiser


def applied_jacobian_norm(
    den: ComplexDenoiser, obj: torch.Tensor, n_iter: int = 40, seed: int = 1
) -> float:
    """Return ``||J_den(obj)||`` (power iteration on ``J^T J``, ``n_iter`` steps)."""
    if not obj.is_complex():
        raise ValueError("applied_jacobian_norm expects a complex object [..., Ny, Nx]")
    was = den.differentiable
    den.differentiable = True

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.view_as_real(den(torch.view_as_complex(x)))

    try:
        x = torch.view_as_real(obj.detach()).contiguous()
        v = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
        v = v / v.norm()
        vjp = torch.func.vjp(f, x)[1]  # (output, vjp_fn)
        sigma = 0.0
        for _ in range(n_iter):
            jv = torch.func.jvp(f, (x,), (v,))[1]  # (output, J v)
            (jtjv,) = vjp(jv)
            sigma = float(jv.detach().norm())
            v = (jtjv / jtjv.norm().clamp_min(1e-30)).detach()
        return sigma
    finally:
        den.differentiable = was
