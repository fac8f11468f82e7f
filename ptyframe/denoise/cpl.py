"""A denoiser that is nonexpansive by construction: a chain of convex-potential layers.

Family ``"cpl"`` (convex potential layers, Meunier, Delattre, Araujo & Allauzen, ICML 2022;
the layer is a gradient step on a fields-of-experts energy as in TNRD, Chen & Pock, IEEE TPAMI
2017). The state ``s`` has ``state_channels`` channels; the image enters as channel 0 (the
rest zero) and leaves as channel 0::

    s_0 = P x = [x, 0, ..., 0]
    s_k = T_k(s_{k-1}) = s_{k-1} - t_k W_k^T sigma_k(W_k s_{k-1} + b_k),   k = 1..K
    D(x) = Q s_K = (s_K)_0

``W_k`` is a zero-padded ``k x k`` convolution from ``state_channels`` to ``hidden_channels``,
``W_k^T`` its exact adjoint (the transposed convolution with the same padding), ``b_k`` a bias
and ``sigma_k(z) = tanh(a_c z) / a_c`` channel-wise with a learned gain ``a_c > 0``.

Theorem (``Lip(D) <= 1``). Let ``S_k >= ||W_k||`` (``realsn.operator_norm_bound``) and
``0 <= t_k S_k^2 <= 2``. Then every ``T_k`` is nonexpansive, hence so is ``D``.

Proof. ``sigma_k`` is nondecreasing and 1-Lipschitz in each channel, so for any ``z, z'`` the
difference quotient ``delta = (sigma(z) - sigma(z')) / (z - z')`` (element-wise, 1 where
``z = z'``) lies in [0, 1]. With ``d = s - s'`` and ``Delta = diag(delta)`` evaluated at
``z = W s + b``, ``z' = W s' + b``::

    T(s) - T(s') = (I - t W^T Delta W) d.

``M = W^T Delta W`` is symmetric positive semi-definite with ``||M|| <= ||W||^2 <= S^2``, so
the symmetric matrix ``I - t M`` has its eigenvalues in ``[1 - t S^2, 1]`` and its norm is at
most ``max(1, t S^2 - 1) <= 1``. ``P`` is an isometric embedding and ``Q`` a coordinate
projection (norm 1), and a composition of nonexpansive maps is nonexpansive. QED.

This is exact (no linearisation or almost-everywhere argument) and holds for every image size.
``layer_bounds`` returns ``max(1, t_k S_k^2 - 1)`` per layer and ``lipschitz_bound`` their
product, i.e. exactly 1 for a valid model (and more than 1 only if a step were too long); the
rigorous ``S_k`` is the Ehlich-Zeller-corrected DFT bound of ``realsn.py``. Each layer is a
gradient step ``s - t grad E(s)`` on the convex energy ``E(s) = sum_c psi_c((W s + b)_c)``
with ``psi_c' = sigma_c``; a step ``t <= 2 / ||W||^2`` on a convex ``||W||^2``-smooth energy is
nonexpansive (Baillon-Haddad), which is the same statement.

Why not ``Id - N`` with a 1-Lipschitz ``N`` (the shipped ``dncnn`` residual structure)? Its
bound is ``1 + Lip(N)``; the averaged ``(Id + N)/2`` is nonexpansive but ``N`` must then carry
the whole image through norm-1 ReLU layers. Here the identity is free (every layer is a
perturbation of the identity) and the network only learns shrinkage of filter responses, which
is what a Gaussian denoiser does.

Training (RealSN, ``realsn=True``): ``W_k = V_k / sigma(V_k)`` with the power-iteration norm
estimate of ``RealSNConv2d`` and ``t_k = 2 sigmoid(theta_k)`` in (0, 2).
``exported()`` divides every ``W_k`` by its rigorous bound (``exact_normalise``) and stores
``t_k = min(2 sigmoid(theta_k), 2 (1 - 1e-6) / S_k^2)`` so that ``t_k S_k^2 < 2`` holds for the
weights as stored (float32 included).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptyframe.denoise.realsn import (
    RealSNConv2d,
    conv_layers,
    effective_weight,
    exact_normalise,
    operator_norm_bound,
)
from ptyframe.errors import ConfigError

FAMILY = "cpl"
_STEP_MARGIN = 1e-6


@dataclass(frozen=True)
class CplArch:
    """Architecture of a ``CplDenoiser`` (what a weights file records to rebuild it)."""

    family: str = FAMILY
    depth: int = 8
    state_channels: int = 1
    hidden_channels: int = 48
    kernel_size: int = 5
    image_channels: int = 1

    def __post_init__(self) -> None:
        if self.family != FAMILY:
            raise ConfigError(f"CplArch.family must be {FAMILY!r}, got {self.family!r}")
        if self.depth < 1:
            raise ConfigError(f"cpl depth must be >= 1, got {self.depth}")
        if self.image_channels < 1 or self.state_channels < self.image_channels:
            raise ConfigError(
                "cpl needs image_channels >= 1 and state_channels >= image_channels, got "
                f"{self.image_channels}, {self.state_channels}"
            )
        if self.hidden_channels < 1:
            raise ConfigError(f"cpl hidden_channels must be >= 1, got {self.hidden_channels}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"cpl kernel_size must be odd, got {self.kernel_size}")

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)


class CplDenoiser(nn.Module):
    """``D(x)`` for float images ``[B, C, H, W]``: the convex-potential chain of the docstring.

    ``realsn=True`` (training) keeps ``RealSNConv2d`` layers and the step logits ``theta``;
    ``realsn=False`` (inference) plain convolutions already normalised and the steps ``step``.
    """

    #: the step lengths of an inference model (a buffer; ``theta`` while training)
    step: Tensor

    def __init__(self, arch: CplArch | None = None, realsn: bool = False, power_px: int = 32):
        super().__init__()
        self.arch = arch or CplArch()
        a = self.arch
        k = a.kernel_size
        layers: list[nn.Conv2d] = []
        for _ in range(a.depth):
            if realsn:
                layers.append(
                    RealSNConv2d(a.state_channels, a.hidden_channels, k, power_px=power_px)
                )
            else:
                layers.append(nn.Conv2d(a.state_channels, a.hidden_channels, k, padding=k // 2))
        self.layers = nn.ModuleList(layers)
        self.realsn = realsn
        # log of the activation gains a_c (per layer and hidden channel); tanh(a z) / a
        self.log_gain = nn.Parameter(torch.full((a.depth, a.hidden_channels), 2.0))
        if realsn:
            # t = 2 sigmoid(theta); theta = -2 starts near the identity (t = 0.24)
            self.theta = nn.Parameter(torch.full((a.depth,), -2.0))
        else:
            self.register_buffer("step", torch.zeros(a.depth))

    @property
    def convs(self) -> list[nn.Conv2d]:
        """The layers, each a convolution (``RealSNConv2d`` while training)."""
        return conv_layers(self.layers)

    @property
    def receptive_radius(self) -> int:
        """Return how far an output pixel sees: ``2 depth (k - 1) / 2`` (conv + adjoint)."""
        return 2 * self.arch.depth * (self.arch.kernel_size // 2)

    def steps(self) -> Tensor:
        """Return the step lengths ``t_k`` ``[depth]``."""
        if self.realsn:
            return 2.0 * torch.sigmoid(self.theta)
        return self.step

    def _weight(self, conv: nn.Conv2d) -> Tensor:
        return conv.normalised_weight() if isinstance(conv, RealSNConv2d) else conv.weight

    def _state(self, x: Tensor) -> Tensor:
        """Return ``P x = [x, 0, ..., 0]`` with ``state_channels`` channels."""
        extra = self.arch.state_channels - x.shape[1]
        if extra <= 0:
            return x
        return torch.cat([x, x.new_zeros(x.shape[0], extra, *x.shape[2:])], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``D(x)``, ``[B, C, H, W] -> [B, C, H, W]``.

        Training (``realsn``): the plain loop (``reference_forward``). Inference: the same
        maths with the fixed constants folded once (``cpl_fast.py``; float rounding differs).
        """
        if self.realsn:
            return self.reference_forward(x)
        from ptyframe.denoise.cpl_fast import folded_forward, folded_layers

        s = folded_forward(folded_layers(self), self._state(x), self.arch.kernel_size)
        return s[:, : x.shape[1]]

    def reference_forward(self, x: Tensor) -> Tensor:
        """Return ``D(x)`` by the plain loop of the module docstring (the reference)."""
        pad = self.arch.kernel_size // 2
        s = self._state(x)
        steps = self.steps()
        gains = torch.exp(self.log_gain)
        for i, conv in enumerate(self.convs):
            w = self._weight(conv)
            g = gains[i].view(1, -1, 1, 1)
            h = torch.tanh(F.conv2d(s, w, conv.bias, padding=pad) * g) / g
            s = s - steps[i] * F.conv_transpose2d(h, w, padding=pad)
        return s[:, : x.shape[1]]

    def residual(self, x: Tensor) -> Tensor:
        """Return the removed part ``x - D(x)``."""
        return x - self(x)

    def exported(self, grid: int = 128) -> CplDenoiser:
        """Return a plain copy: rigorous unit-norm layers and steps with ``t S^2 < 2``."""
        out = CplDenoiser(self.arch, realsn=False)
        layers = [exact_normalise(c, grid) for c in self.convs]
        out.layers = nn.ModuleList(layers)
        with torch.no_grad():
            out.log_gain.copy_(self.log_gain)
            raw = self.steps().detach().double()
            for i, conv in enumerate(layers):
                s2 = operator_norm_bound(conv.weight.detach().double(), grid) ** 2
                cap = 2.0 * (1.0 - _STEP_MARGIN) / max(s2, 1e-30)
                out.step[i] = min(float(raw[i]), cap)
        return out.to(next(self.parameters()).device)


def dct_filters(k: int) -> Tensor:
    """Return the ``k^2 - 1`` non-constant orthonormal 2-D DCT-II filters ``[k^2 - 1, k, k]``."""
    n = torch.arange(k, dtype=torch.float64)
    basis = torch.cos(torch.pi * (n[None, :] + 0.5) * n[:, None] / k)  # [freq, x]
    basis[0] /= math.sqrt(2.0)
    basis *= math.sqrt(2.0 / k)
    filt = torch.einsum("ay,bx->abyx", basis, basis).reshape(k * k, k, k)
    return filt[1:]


@torch.no_grad()
def init_dct_shrinkage(model: CplDenoiser, log_gains: tuple[float, ...] = (4.5, 5.5)) -> None:
    """Start ``model`` as sliding-DCT shrinkage in its first layer and ~identity after it.

    With the ``k^2 - 1`` non-constant orthonormal DCT filters ``f_j`` stacked (copies of the
    set, one per entry of ``log_gains``) into ``W = [f_j] / (k sqrt(copies))``, ``W^T W`` is
    the projection onto zero-mean patches (a Parseval frame of the non-constant part), and
    the first layer ``s - W^T sigma(W s)`` (``t = 1``) keeps the patch mean and replaces each
    DCT coefficient ``c`` by ``c - tanh(a c)/a``, a soft shrinkage with threshold ``~1/a``
    (translation-invariant DCT denoising, Yu & Sapiro 2011). Later layers start with
    ``t = 2 sigmoid(-4)`` and a gain ``a = e^6`` (``sigma ~ sign / 400``): ~ the identity.
    Needs ``state_channels = 1`` and ``hidden_channels >= k^2 - 1`` (channels beyond the
    copies keep their random start) and a training model (``realsn=True``).
    """
    a = model.arch
    k = a.kernel_size
    filt = dct_filters(k).float()
    n = filt.shape[0]
    copies = min(len(log_gains), a.hidden_channels // n)
    if a.state_channels != 1 or copies < 1 or not model.realsn:
        raise ConfigError(
            f"dct init needs state_channels = 1, hidden_channels >= {n} and a training model"
        )
    for i, conv in enumerate(model.convs):
        assert conv.bias is not None  # every layer has a bias (CplDenoiser)
        conv.bias.zero_()
        if i == 0:
            conv.weight.zero_()
            for c in range(copies):
                conv.weight[c * n : (c + 1) * n, 0] = filt / (k * math.sqrt(copies))
                model.log_gain[0, c * n : (c + 1) * n] = log_gains[c]
        else:
            model.log_gain[i] = 6.0  # sigma ~ sign / 400: the layer starts as ~ the identity
        if isinstance(conv, RealSNConv2d):
            conv.refresh(n_iter=100)
    model.theta.fill_(-4.0)  # t = 0.036 (Adam moves theta at the learning rate anyway)
    model.theta[0] = 0.0  # t = 1


def layer_bounds(model: CplDenoiser, grid: int = 128) -> list[float]:
    """Return ``max(1, t_k S_k^2 - 1)`` per layer (rigorous ``Lip(T_k)`` bounds, docstring)."""
    out = []
    steps = model.steps().detach().double()
    for i, conv in enumerate(model.convs):
        s = operator_norm_bound(effective_weight(conv).detach().double(), grid)
        out.append(max(1.0, float(steps[i]) * s * s - 1.0))
    return out


def weight_norm_bounds(model: CplDenoiser, grid: int = 128) -> list[float]:
    """Return the rigorous operator-norm bound ``S_k`` of every layer's effective weight."""
    return [
        operator_norm_bound(effective_weight(conv).detach().double(), grid) for conv in model.convs
    ]


def lipschitz_bound(model: CplDenoiser, grid: int = 128) -> float:
    """Return ``prod_k max(1, t_k S_k^2 - 1) >= Lip(D)`` (1 for a valid model)."""
    prod = 1.0
    for b in layer_bounds(model, grid):
        prod *= b
    return prod


def step_margins(model: CplDenoiser, grid: int = 128) -> list[float]:
    """Return ``t_k S_k^2`` per layer (must be <= 2; how close each layer is to the limit)."""
    steps = model.steps().detach().double()
    return [float(steps[i]) * s * s for i, s in enumerate(weight_norm_bounds(model, grid))]


@torch.no_grad()
def grow_from(model: CplDenoiser, source: CplDenoiser) -> int:
    """Copy an exported ``source`` net into the first layers of a training ``model``.

    Progressive growing: a deeper or wider net starts as ``source`` followed by the layers
    ``model`` already has (after ``init_dct_shrinkage`` those are ~ the identity), so training
    continues from ``source`` instead of from scratch. RealSN divides the weight by its norm
    estimate ``r = sigma(W)`` (scale invariant), so layer ``k`` of ``source``
    (``s - t W^T tanh(g (W s + b)) / g``) is reproduced exactly by the weight ``W``, the
    bias ``b / r``, the gain ``g r`` and the step ``t r^2`` (``theta = logit(t r^2 / 2)``,
    capped at ``t r^2 <= 1.99``): then ``W s / r + b / r = (W s + b) / r`` and
    ``t r^2 (W / r)^T tanh(g r (W s + b) / r) / (g r) = t W^T tanh(g (W s + b)) / g``.
    Hidden channels of ``model`` beyond ``source``'s start at 1e-3 of their random weight
    (they barely change the norm) with the gain ``e^6`` (~ no effect). Returns the number of
    layers copied. Needs the same ``state_channels``, ``kernel_size`` and ``image_channels``,
    at least as many layers and hidden channels, and a training ``model`` (``realsn=True``).
    """
    a, b = model.arch, source.arch
    same = (a.state_channels, a.kernel_size, a.image_channels) == (
        b.state_channels,
        b.kernel_size,
        b.image_channels,
    )
    if not (
        model.realsn and same and a.depth >= b.depth and a.hidden_channels >= b.hidden_channels
    ):
        raise ConfigError(
            f"cannot grow cpl {a.to_dict()} (training: {model.realsn}) from {b.to_dict()}: "
            "use the same state/kernel/image channels, >= its depth and hidden channels"
        )
    h = b.hidden_channels
    src_steps = source.steps().detach().double()
    for i in range(b.depth):
        conv, src = model.convs[i], source.convs[i]
        assert isinstance(conv, RealSNConv2d)  # a training model (checked above)
        assert conv.bias is not None and src.bias is not None
        conv.weight.mul_(1e-3)
        conv.weight[:h].copy_(src.weight)
        conv.bias.zero_()
        model.log_gain[i] = 6.0
        r = conv.refresh(n_iter=200)
        conv.bias[:h].copy_(src.bias / r)
        model.log_gain[i, :h] = source.log_gain[i] + math.log(r)
        half = min(float(src_steps[i]) * r * r, 1.99) / 2.0
        model.theta[i] = math.log(half / (1.0 - half))
    return b.depth
