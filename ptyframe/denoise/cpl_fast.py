"""Evaluate an inference ``CplDenoiser`` fast: the same maths with the constants folded in.

A layer of ``cpl.py`` (``k x k`` kernels, padding ``p = (k - 1) / 2``, gains ``a_c > 0``)::

    s <- s - t W^T (tanh(a (W s + b)) / a)

is rewritten, exactly in real arithmetic, with the fixed inference weights folded once::

    z = W_in s + b_in,          W_in = diag(a) W,  b_in = a b      (a conv, C -> H channels)
    s <- s - W_out^T tanh(z),   W_out = diag(t / a) W               (its adjoint, H -> C)

because ``a (W s + b) = diag(a) W s + a b`` and ``t W^T diag(1/a) h = (diag(t/a) W)^T h``.
The adjoint (``conv_transpose2d`` with the same padding) is computed as one matrix product
and a col2im: ``cols[(o, i, j), q] = sum_c W_out[c, o, i, j] h[c, q]`` (a ``[C k^2, H]`` by
``[H, pixels]`` GEMM) and ``F.fold`` sums ``cols`` into ``out[o, y + i - p, x + j - p]``,
which is ``(W_out^T h)[o, y', x'] = sum_{c,i,j} W_out[c, o, i, j] h[c, y' - i + p, x' - j + p]``,
the definition of the transposed convolution. For ``C = 1`` state channel this is a
``[k^2, H]`` GEMM instead of a convolution with one output channel, which oneDNN runs slowly.
Where oneDNN's fused convolution is available (CPU, float32, mkldnn enabled, and no
derivative taken: grad mode off, no forward AD or ``torch.func`` transform) the first conv,
its bias and the ``tanh`` run as one call (``torch.ops.mkldnn._convolution_pointwise``).

Only float rounding differs from the plain loop (``CplDenoiser.reference_forward``); the
Lipschitz certificate is about the maths and is unchanged. The folded weights are cached
on the model and rebuilt when a weight, bias, gain or step tensor changes (pointer or
version), so an edit of the weights or a ``.to()`` is picked up.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class FoldedLayer:
    """One layer's folded constants: ``w_in`` ``[H, C, k, k]``, ``b_in`` ``[H]``, ``w_out``."""

    w_in: Tensor
    b_in: Tensor
    w_out: Tensor  # [C k k, H]: the adjoint as a GEMM


def fold_layer(weight: Tensor, bias: Tensor, gain: Tensor, step: Tensor) -> FoldedLayer:
    """Return the folded constants of one layer (module docstring); differentiable."""
    hidden = weight.shape[0]
    a = gain.view(hidden, 1, 1, 1)
    w_out = weight * (step / gain).view(hidden, 1, 1, 1)
    return FoldedLayer(
        w_in=(weight * a).contiguous(),
        b_in=(bias * gain).contiguous(),
        w_out=w_out.permute(1, 2, 3, 0).reshape(-1, hidden).contiguous(),
    )


def _key(model: nn.Module) -> tuple:
    tensors = list(model.parameters()) + list(model.buffers())
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)


def folded_layers(model: nn.Module) -> list[FoldedLayer]:
    """Return the model's folded layers, from the cache when no weight changed since."""
    needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in model.parameters())
    if not needs_grad:
        key = _key(model)
        cached = model.__dict__.get("_folded_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
    with torch.set_grad_enabled(needs_grad):
        gains = torch.exp(model.log_gain)
        steps = model.steps()
        out = [
            fold_layer(conv.weight, conv.bias, gains[i], steps[i])
            for i, conv in enumerate(model.layers)
        ]
    if not needs_grad:
        model.__dict__["_folded_cache"] = (key, out)
    return out


@lru_cache(maxsize=1)
def fused_available() -> bool:
    """Return whether oneDNN's fused conv + tanh runs here (checked once on a tiny input)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        x, w = torch.ones(1, 1, 4, 4), torch.ones(2, 1, 3, 3)
        y = torch.ops.mkldnn._convolution_pointwise(
            x, w, None, [1, 1], [1, 1], [1, 1], 1, "tanh", [], ""
        )
        return bool(torch.allclose(y, torch.tanh(F.conv2d(x, w, padding=1))))
    except (RuntimeError, AttributeError):
        return False


def _untracked(s: Tensor) -> bool:
    """Return whether no derivative is taken through ``s`` (grad mode, forward AD, torch.func)."""
    if torch.is_grad_enabled() or torch._C._functorch.is_functorch_wrapped_tensor(s):
        return False
    return fwAD.unpack_dual(s).tangent is None


def _hidden(s: Tensor, layer: FoldedLayer, pad: int) -> Tensor:
    """Return ``tanh(W_in s + b_in)``, fused where oneDNN can (NCHW or channels-last)."""
    fused = (
        s.device.type == "cpu"
        and s.dtype == torch.float32
        and torch.backends.mkldnn.enabled
        and _untracked(s)
        and fused_available()
    )
    if fused:
        p = [pad, pad]
        h = torch.ops.mkldnn._convolution_pointwise(
            s, layer.w_in, layer.b_in, p, [1, 1], [1, 1], 1, "tanh", [], ""
        )
    else:
        h = torch.tanh(F.conv2d(s, layer.w_in, layer.b_in, padding=pad))
    return h


def _pixels_last(h: Tensor) -> Tensor:
    """Return ``h`` ``[B, H, Y, X]`` as ``[B, H, Y X]`` without a copy where its layout allows.

    oneDNN may return the hidden maps channels-last (``[B, Y, X, H]`` in memory); then the
    result is the transposed view, which the GEMM reads as a transposed operand.
    """
    b, c, y, x = h.shape
    if h.is_contiguous():
        return h.view(b, c, y * x)
    if h.is_contiguous(memory_format=torch.channels_last):
        return h.permute(0, 2, 3, 1).reshape(b, y * x, c).transpose(1, 2)
    return h.reshape(b, c, y * x)


def folded_forward(layers: list[FoldedLayer], s: Tensor, kernel_size: int) -> Tensor:
    """Run the folded chain on the state ``s`` ``[B, C, H, W]``; return the final state."""
    pad = kernel_size // 2
    b, c, h_px, w_px = s.shape
    s = s.clone(memory_format=torch.contiguous_format)
    for layer in layers:
        cols = torch.matmul(layer.w_out, _pixels_last(_hidden(s, layer, pad)))
        s = s - F.fold(cols, (h_px, w_px), kernel_size, padding=pad)
    return s
