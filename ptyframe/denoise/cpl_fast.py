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
On the CPU each layer runs in strips of rows (``STRIP_ROWS``, with the halo the two
convolutions need), so the ``hidden``-channel maps of a strip stay in cache; every output
pixel sums the same terms as on the whole image.

Only float rounding differs from the plain loop (``CplDenoiser.reference_forward``); the
Lipschitz certificate is about the maths and is unchanged. The folded weights are cached
on the model and rebuilt when a weight, bias, gain or step tensor changes (pointer or
version), so an edit of the weights or a ``.to()`` is picked up.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import Tensor, nn


class FoldableCpl(Protocol):
    """What folding reads of a ``CplDenoiser``: its convolutions, gains and steps."""

    @property
    def log_gain(self) -> Tensor: ...

    @property
    def convs(self) -> Sequence[nn.Conv2d]: ...

    def steps(self) -> Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]: ...


#: output rows per strip of a layer (``folded_forward``); 0 = the whole image at once
STRIP_ROWS = 32


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


def _key(model: FoldableCpl) -> tuple:
    tensors = list(model.parameters()) + list(model.buffers())
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)


def folded_layers(model: FoldableCpl) -> list[FoldedLayer]:
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
        out = []
        for i, conv in enumerate(model.convs):
            assert conv.bias is not None  # every layer of a CplDenoiser has a bias
            out.append(fold_layer(conv.weight, conv.bias, gains[i], steps[i]))
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
    wrapped = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)
    if torch.is_grad_enabled() or wrapped is None or wrapped(s):
        return False  # without torch's functorch query, take the plain (traceable) path
    return fwAD.unpack_dual(s).tangent is None


def _hidden(s: Tensor, layer: FoldedLayer, pad: tuple[int, int]) -> Tensor:
    """Return ``tanh(W_in s + b_in)`` (zero padding ``pad`` = (rows, cols)), fused where
    oneDNN can; the result may be NCHW or channels-last."""
    fused = (
        s.device.type == "cpu"
        and s.dtype == torch.float32
        and bool(torch.backends.mkldnn.enabled)
        and _untracked(s)
        and fused_available()
    )
    if fused:
        h = torch.ops.mkldnn._convolution_pointwise(
            s, layer.w_in, layer.b_in, list(pad), [1, 1], [1, 1], 1, "tanh", [], ""
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


def _layer_rows(s: Tensor, layer: FoldedLayer, k: int, r0: int, r1: int) -> Tensor:
    """Return rows ``r0:r1`` of ``s - W_out^T tanh(W_in s + b_in)`` (the whole-image map).

    Output rows need the hidden maps on rows ``r0 - p .. r1 + p`` and those the state on
    rows ``r0 - 2p .. r1 + 2p``; beyond the image the zero padding of the whole-image
    convolutions is reproduced (rows of zeros for ``W_in``; hidden rows outside the image
    simply do not exist for the adjoint, which is what its zero padding means).
    """
    p, rows = k // 2, s.shape[2]
    h0, h1 = max(r0 - p, 0), min(r1 + p, rows)  # hidden rows needed (none beyond the image)
    a, b = max(h0 - p, 0), min(h1 + p, rows)  # state rows they see; zero rows beyond
    top, bottom = a - (h0 - p), (h1 + p) - b
    sub = s[:, :, a:b]
    if top or bottom:
        sub = F.pad(sub, (0, 0, top, bottom))
    h = _hidden(sub, layer, (0, p))  # hidden rows h0 .. h1
    hh, width = h.shape[2], h.shape[3]
    cols = torch.matmul(layer.w_out, _pixels_last(h))
    adj = F.fold(cols, (hh + 2 * p, width), k, padding=(0, p))  # rows h0 - p .. h0 + hh + p
    return s[:, :, r0:r1] - adj[:, :, r0 - (h0 - p) : r1 - (h0 - p)]


def folded_forward(
    layers: list[FoldedLayer], s: Tensor, kernel_size: int, strip_rows: int = STRIP_ROWS
) -> Tensor:
    """Run the folded chain on the state ``s`` ``[B, C, H, W]``; return the final state.

    On the CPU each layer is computed in strips of ``strip_rows`` output rows (0, or any
    other device: the whole image at once), so that a strip's hidden maps
    (``B x hidden x (strip_rows + k - 1) x W`` floats) stay in cache instead of making one
    object-sized round trip through memory; every output pixel still sums the same terms
    (``_layer_rows``).
    """
    rows = s.shape[2]
    step = rows if strip_rows <= 0 or s.device.type != "cpu" else int(strip_rows)
    s = s.clone(memory_format=torch.contiguous_format)
    for layer in layers:
        parts = [
            _layer_rows(s, layer, kernel_size, r0, min(r0 + step, rows))
            for r0 in range(0, rows, step)
        ]
        s = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
    return s
