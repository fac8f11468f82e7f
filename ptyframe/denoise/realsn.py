"""Compute operator norms of 2-D convolutions and normalise them (RealSN, Ryu et al. 2019).

A convolution layer ``y = W * x`` with ``C_in`` input and ``C_out`` output channels, stride 1,
no groups, is a block-Toeplitz linear map. Its norm is *not* the spectral norm of the reshaped
``[C_out, C_in k k]`` weight matrix (Miyato's SN); it is the norm of the operator itself.

Exact norm via the kernel's Fourier transform (Sedghi, Gupta & Long, ICLR 2019, Thm. 6):
with circular padding on an ``n x n`` grid the convolution is block-diagonalised by the 2-D
DFT, and its singular values are those of the ``C_out x C_in`` matrices

    K(w) = sum_{a,b} W[:, :, a, b] exp(-i (w_y a + w_x b)),   w = 2 pi (k_y, k_x) / n,

so ``||conv||_circ(n) = max_k sigma_max(K(w_k))`` (``circular_operator_norm``).

The network in ``dncnn.py`` pads with **zeros** (so that tiles can be stitched exactly and the
object's edges do not wrap around). For zero padding on any ``N x N`` image the norm is at most
``S = sup_w sigma_max(K(w))`` over *continuous* frequencies: the zero-padded convolution is
``P C_M E`` with ``E`` the zero embedding of ``N x N`` into an ``M x M`` grid (``M >= N + k``),
``C_M`` the circular convolution there and ``P`` a restriction, so
``||P C_M E|| <= ||C_M|| <= S``; ``S`` is also the exact norm on the infinite lattice
``l2(Z^2)`` and the limit of the finite-size norms. The same ``S`` bounds the circular
convolution on every grid size. ``operator_norm_bound`` returns a rigorous upper bound of
``S`` from an ``n x n`` frequency grid: for unit ``u, v`` and a phase ``phi``,
``Re(exp(-i phi) u^H K(w) v)`` is a real trigonometric polynomial of degree ``d = (k-1)/2`` in
each frequency (after centring an odd kernel; ``k - 1`` for an even one), and the
Ehlich-Zeller inequality ``max |T| <= sec(pi d / n) max_j |T(2 pi j / n)|`` (``n > 2d``),
applied in ``w_y`` and then in ``w_x``, gives

    S <= sec(pi d_y / n_y) sec(pi d_x / n_x) max_k sigma_max(K(w_k)).

On a 128 x 128 grid and 3 x 3 kernels the factor is 1 + 6.0e-4.

Power iteration (RealSN, Ryu, Liu, Wang, Chen, Wang & Yin, ICML 2019, sec. 5): iterate
``u <- A^T A u / ||A^T A u||`` with ``A`` the convolution and ``A^T`` its adjoint (transposed
convolution), ``sigma = ||A u||`` (``power_iteration_norm``). It gives a lower bound of the
norm for the chosen input size and converges to it. ``RealSNConv2d`` keeps persistent
power-iteration vectors, one per frequency of a ``power_px`` grid (see its docstring for why),
does one step per training forward pass and divides the weight by the estimate times the
Ehlich-Zeller factor; ``exact_normalise`` finally divides by ``max(1, operator_norm_bound)``,
so the shipped layers satisfy ``S <= 1`` rigorously.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "RealSNConv2d",
    "circular_operator_norm",
    "conv_adjoint",
    "conv_apply",
    "exact_normalise",
    "kernel_spectrum",
    "operator_norm_bound",
    "power_iteration_norm",
]


def _degree(k: int) -> int:
    """Return the trigonometric degree of a length-``k`` kernel's transfer function."""
    return (k - 1) // 2 if k % 2 == 1 else k - 1


def kernel_spectrum(weight: Tensor, grid: tuple[int, int], rows: slice | None = None) -> Tensor:
    """Return ``K(w)`` on the ``grid`` frequencies, complex128 ``[n_y', n_x//2+1, C_out, C_in]``.

    ``weight`` is ``[C_out, C_in, k_y, k_x]``. Only ``k_x = 0..n_x//2`` is returned: a real
    kernel has ``K(-w) = conj K(w)``, which has the same singular values. ``rows`` selects a
    range of ``k_y`` (to bound memory).
    """
    ny, nx = grid
    w = weight.detach().to(torch.float64)
    ky = torch.arange(ny, dtype=torch.float64)[rows if rows is not None else slice(None)]
    kx = torch.arange(nx // 2 + 1, dtype=torch.float64)
    a = torch.arange(w.shape[-2], dtype=torch.float64)
    b = torch.arange(w.shape[-1], dtype=torch.float64)
    ey = torch.exp(-2j * math.pi * torch.outer(ky, a) / ny)  # [ny', ky]
    ex = torch.exp(-2j * math.pi * torch.outer(kx, b) / nx)  # [nx', kx]
    return torch.einsum("ya,xb,oiab->yxoi", ey, ex, w.to(torch.complex128))


def circular_operator_norm(weight: Tensor, grid: int | tuple[int, int], chunk: int = 16) -> float:
    """Return the exact norm of the circularly padded convolution on a ``grid`` image.

    ``max_k sigma_max(K(w_k))`` over the DFT frequencies (Sedghi et al. 2019, Thm. 6).
    """
    ny, nx = (grid, grid) if isinstance(grid, int) else grid
    best = 0.0
    for r0 in range(0, ny, chunk):
        spec = kernel_spectrum(weight, (ny, nx), slice(r0, min(r0 + chunk, ny)))
        best = max(best, float(torch.linalg.matrix_norm(spec, ord=2).max()))
    return best


def operator_norm_bound(weight: Tensor, grid: int = 128) -> float:
    """Return a rigorous upper bound of the convolution's norm for any input size and padding.

    ``sec(pi d_y/n) sec(pi d_x/n) max_k sigma_max(K(w_k))`` on an ``n x n`` grid (module
    docstring); it bounds zero-padded and circular convolutions of every image size.
    """
    ky, kx = weight.shape[-2:]
    dy, dx = _degree(ky), _degree(kx)
    if grid <= 2 * max(dy, dx):
        raise ValueError(
            f"grid {grid} too small for a {ky}x{kx} kernel (needs > {2 * max(dy, dx)})"
        )
    factor = 1.0 / (math.cos(math.pi * dy / grid) * math.cos(math.pi * dx / grid))
    return circular_operator_norm(weight, grid) * factor


def conv_apply(x: Tensor, weight: Tensor, padding_mode: str = "zeros") -> Tensor:
    """Apply the bias-free convolution ``A x`` with 'same' output size, ``[B, C_in, H, W]``."""
    ky, kx = weight.shape[-2:]
    if padding_mode == "zeros":
        return F.conv2d(x, weight, padding=(ky // 2, kx // 2))
    if padding_mode == "circular":
        _check_odd(weight)
        x = F.pad(x, (kx // 2, kx // 2, ky // 2, ky // 2), mode="circular")
        return F.conv2d(x, weight)
    raise ValueError(f"padding_mode must be 'zeros' or 'circular', not {padding_mode!r}")


def conv_adjoint(y: Tensor, weight: Tensor, padding_mode: str = "zeros") -> Tensor:
    """Apply the adjoint ``A^T y`` of ``conv_apply`` (``[B, C_out, H, W] -> [B, C_in, H, W]``)."""
    ky, kx = weight.shape[-2:]
    if padding_mode == "zeros":
        _check_odd(weight)
        return F.conv_transpose2d(y, weight, padding=(ky // 2, kx // 2))
    if padding_mode == "circular":
        _check_odd(weight)
        flipped = weight.flip(-1, -2).transpose(0, 1)
        y = F.pad(y, (kx // 2, kx // 2, ky // 2, ky // 2), mode="circular")
        return F.conv2d(y, flipped)
    raise ValueError(f"padding_mode must be 'zeros' or 'circular', not {padding_mode!r}")


def _check_odd(weight: Tensor) -> None:
    if weight.shape[-1] % 2 == 0 or weight.shape[-2] % 2 == 0:
        raise ValueError(f"only odd kernel sizes are supported, got {tuple(weight.shape[-2:])}")


def _unit(x: Tensor) -> Tensor:
    return x / x.norm().clamp_min(1e-30)


def power_iteration_norm(
    weight: Tensor,
    size: int | tuple[int, int],
    n_iter: int = 200,
    padding_mode: str = "zeros",
    seed: int = 0,
) -> float:
    """Estimate the convolution's norm on a ``size`` image by power iteration on ``A^T A``.

    Returns ``||A u||`` after ``n_iter`` steps (a lower bound that converges to the norm).
    """
    h, w = (size, size) if isinstance(size, int) else size
    gen = torch.Generator().manual_seed(seed)
    wt = weight.detach()
    u = _unit(torch.randn(1, wt.shape[1], h, w, generator=gen, dtype=wt.dtype))
    with torch.no_grad():
        for _ in range(n_iter):
            u = _unit(conv_adjoint(conv_apply(u, wt, padding_mode), wt, padding_mode))
        return float(conv_apply(u, wt, padding_mode).norm())


def _sec_factor(kernel: tuple[int, ...], grid: int) -> float:
    dy, dx = _degree(kernel[0]), _degree(kernel[1])
    return 1.0 / (math.cos(math.pi * dy / grid) * math.cos(math.pi * dx / grid))


class RealSNConv2d(nn.Conv2d):
    """A 'same' zero-padded Conv2d whose weight is divided by its operator norm (RealSN).

    Every forward pass in training mode does ``n_power`` steps of a persistent power
    iteration and uses ``W / sigma`` (Ryu et al. 2019), with the gradient flowing through
    ``sigma`` (Miyato et al. 2018). The iteration runs on the block-diagonalised circular
    convolution of a ``power_px`` grid: one vector ``u(w)`` per DFT frequency,
    ``u <- K(w)^H K(w) u / ||.||``, and

        sigma = sec_factor * max_w ||K(w) u(w)||,

    i.e. the circular conv/transposed-conv power iteration restricted to each Fourier
    subspace. Tracking every frequency matters: a single spatial-domain vector (Ryu et al.'s
    form, ``power_iteration_norm``) lags when the top singular value moves to another
    frequency, and the layer norms then drift above 1 during training.
    ``sec_factor`` is the Ehlich-Zeller factor of ``operator_norm_bound`` for this grid, so
    with converged vectors ``sigma`` bounds the zero-padded layer at every image size and the
    network trains under the same constraint that ``exact_normalise`` certifies. In eval
    mode ``sigma`` is recomputed (without gradient) for the current weights.
    """

    # buffers (registered in __init__): the DFT factors of the power grid, the power
    # vectors ``u(w)`` and the last ``sigma``
    _ey: Tensor
    _ex: Tensor
    u: Tensor
    sigma: Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        bias: bool = True,
        power_px: int = 32,
        n_power: int = 1,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias
        )
        self.n_power = int(n_power)
        self.sec_factor = _sec_factor(self.kernel_size, power_px)
        g = int(power_px)
        ky, kx = self.kernel_size
        ey = torch.exp(-2j * math.pi * torch.outer(torch.arange(g), torch.arange(ky)) / g)
        ex = torch.exp(-2j * math.pi * torch.outer(torch.arange(g // 2 + 1), torch.arange(kx)) / g)
        self.register_buffer("_ey", ey.to(torch.complex64), persistent=False)
        self.register_buffer("_ex", ex.to(torch.complex64), persistent=False)
        u = torch.randn(g, g // 2 + 1, in_channels, 1, dtype=torch.complex64)
        self.register_buffer("u", u / u.norm(dim=-2, keepdim=True))
        self.register_buffer("sigma", torch.ones(()))
        self.refresh(n_iter=50)

    def spectrum(self, weight: Tensor) -> Tensor:
        """Return ``K(w)`` on the power grid, complex64 ``[g, g//2+1, C_out, C_in]``."""
        return torch.einsum("ya,xb,oiab->yxoi", self._ey, self._ex, weight.to(torch.complex64))

    @torch.no_grad()
    def _iterate(self, spec: Tensor, n_iter: int) -> None:
        u = self.u
        kh = spec.conj().transpose(-1, -2)
        for _ in range(n_iter):
            u = kh @ (spec @ u)
            u = u / u.norm(dim=-2, keepdim=True).clamp_min(1e-30)
        self.u.copy_(u)

    @torch.no_grad()
    def refresh(self, n_iter: int = 50) -> float:
        """Run ``n_iter`` power steps for the current weight; store and return ``sigma``."""
        spec = self.spectrum(self.weight.detach())
        self._iterate(spec, n_iter)
        sig = (spec @ self.u).norm(dim=(-2, -1)).max() * self.sec_factor
        self.sigma.copy_(sig)
        return float(sig)

    def normalised_weight(self) -> Tensor:
        """Return ``W / sigma`` after ``n_power`` power steps (differentiable when training)."""
        if not (self.training and torch.is_grad_enabled()):
            self.refresh(self.n_power)
            return self.weight / self.sigma
        with torch.no_grad():
            spec = self.spectrum(self.weight.detach())
            self._iterate(spec, self.n_power)
            per_freq = (spec @ self.u).norm(dim=(-2, -1))
            iy, ix = divmod(int(per_freq.argmax()), per_freq.shape[1])
        # differentiable sigma at the maximising frequency only (keeps autograd memory small)
        k_star = torch.einsum(
            "a,b,oiab->oi", self._ey[iy], self._ex[ix], self.weight.to(torch.complex64)
        )
        sigma = (k_star @ self.u[iy, ix]).norm() * self.sec_factor
        self.sigma.copy_(sigma.detach())
        return self.weight / sigma

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.normalised_weight(), self.bias)


def conv_layers(layers: nn.ModuleList) -> list[nn.Conv2d]:
    """Return ``layers`` as the convolutions a denoiser holds (``RealSNConv2d`` in training)."""
    convs = [c for c in layers if isinstance(c, nn.Conv2d)]
    if len(convs) != len(layers):
        raise TypeError("every layer of a denoiser is an nn.Conv2d")
    return convs


@torch.no_grad()
def effective_weight(conv: nn.Conv2d) -> Tensor:
    """Return the weight ``conv`` applies: ``normalised_weight()`` in eval mode for a
    ``RealSNConv2d`` (its training mode kept), else ``conv.weight``."""
    if isinstance(conv, RealSNConv2d):
        was = conv.training
        conv.eval()
        w = conv.normalised_weight()
        conv.train(was)
        return w
    return conv.weight


@torch.no_grad()
def exact_normalise(conv: nn.Conv2d, grid: int = 128) -> nn.Conv2d:
    """Return a plain zero-padded ``nn.Conv2d`` with weight ``W / max(1, bound(W))``.

    ``W`` is the layer's effective weight (``normalised_weight()`` in eval mode for a
    ``RealSNConv2d``) and ``bound = operator_norm_bound``; the result's rigorous norm bound is
    at most 1 (up to float32 rounding). Layers already inside the bound are left as they are.
    """
    if isinstance(conv, RealSNConv2d):
        conv.eval()
        w = conv.normalised_weight()
    else:
        w = conv.weight
    w = w.to(torch.float64)
    w = w / max(1.0, operator_norm_bound(w, grid))
    ky, kx = conv.kernel_size[0], conv.kernel_size[1]
    pad = conv.padding if isinstance(conv.padding, str) else (conv.padding[0], conv.padding[1])
    out = nn.Conv2d(
        conv.in_channels, conv.out_channels, (ky, kx), padding=pad, bias=conv.bias is not None
    )
    out.weight.copy_(w.to(out.weight.dtype))
    if conv.bias is not None and out.bias is not None:
        out.bias.copy_(conv.bias)
    return out
