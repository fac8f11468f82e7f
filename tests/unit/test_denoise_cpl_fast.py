"""The fast inference path of the ``cpl`` nets equals the plain loop of ``cpl.py``'s docstring.

The loop is written out here (``conv2d``, ``tanh(g z) / g``, ``conv_transpose2d``), so the
comparison is not with the code under test; the inputs are noisy images, not zeros.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptyframe.denoise.apply import ComplexDenoiser
from ptyframe.denoise.auto import ConvexMix
from ptyframe.denoise.check import applied_jacobian_norm
from ptyframe.denoise.cpl import CplDenoiser
from ptyframe.denoise.cpl_fast import folded_forward, folded_layers
from ptyframe.denoise.weights import load_denoiser

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:DeprecationWarning")


def docstring_loop(net: CplDenoiser, x: Tensor) -> Tensor:
    """``s <- s - t_k W_k^T tanh(a (W_k s + b_k)) / a``, ``k = 1..K``; ``D(x) = s_0``."""
    pad = net.arch.kernel_size // 2
    s = x
    for k, conv in enumerate(net.layers):
        a = torch.exp(net.log_gain[k]).view(1, -1, 1, 1)
        h = torch.tanh(a * F.conv2d(s, conv.weight, conv.bias, padding=pad)) / a
        s = s - net.step[k] * F.conv_transpose2d(h, conv.weight, padding=pad)
    return s


def noisy_image(n: int = 96, seed: int = 0) -> Tensor:
    """A smooth random field in [0, 1] plus Gaussian noise 0.05, ``[2, 1, n, n]``."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2
    out = []
    for _ in range(2):
        field = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * np.exp(-f / 1e-3)))
        field = (field - field.min()) / np.ptp(field)
        out.append(field + 0.05 * rng.standard_normal((n, n)))
    return torch.tensor(np.stack(out)[:, None], dtype=torch.float32)


@pytest.mark.parametrize("stem", ["cpl_sigma15", "cpl_blind"])
def test_fast_path_equals_the_docstring_loop_on_a_noisy_image(stem: str) -> None:
    net = load_denoiser(stem, "cpu")
    x = noisy_image()
    want = docstring_loop(net, x).detach()
    assert float((want - x).abs().max()) > 0.05  # the net does change the image
    with torch.no_grad():
        got = net(x)  # fused oneDNN path where available
        cl = net(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, want, rtol=0, atol=2e-6)
    assert torch.allclose(cl, want, rtol=0, atol=2e-6)
    xg = x.clone().requires_grad_()
    y = net(xg)  # the differentiable path
    assert torch.allclose(y.detach(), want, rtol=0, atol=2e-6)
    y.square().sum().backward()
    xr = x.clone().requires_grad_()
    docstring_loop(net, xr).square().sum().backward()
    assert torch.allclose(xg.grad, xr.grad, rtol=0, atol=1e-5)


@pytest.mark.parametrize("strip_rows", [0, 1, 3, 7, 40, 1000])
def test_strips_of_any_height_give_the_whole_image_map(strip_rows: int) -> None:
    net = load_denoiser("cpl_blind", "cpu")
    x = noisy_image(45, seed=4)[:, :, :, :37]  # odd, non-square
    want = docstring_loop(net, x)
    with torch.no_grad():
        got = folded_forward(folded_layers(net), x, net.arch.kernel_size, strip_rows)
    assert torch.allclose(got, want, rtol=0, atol=2e-6)
    xg = x.clone().requires_grad_()
    folded_forward(folded_layers(net), xg, net.arch.kernel_size, strip_rows).sum().backward()
    xr = x.clone().requires_grad_()
    docstring_loop(net, xr).sum().backward()
    assert torch.allclose(xg.grad, xr.grad, rtol=0, atol=1e-5)


def test_weight_gradients_through_the_fast_path_equal_the_loop() -> None:
    net = load_denoiser("cpl_sigma15", "cpu").requires_grad_(True)  # e.g. fine-tuning
    x = noisy_image(40, seed=5)
    grads = []
    for run in (net, lambda y: docstring_loop(net, y)):
        net.zero_grad()
        run(x).square().sum().backward()
        grads.append([p.grad.clone() for p in (net.layers[0].weight, net.log_gain)])
    for fast, ref in zip(*grads, strict=True):
        assert float(ref.abs().max()) > 0
        assert torch.allclose(fast, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_cached_constants_follow_an_edit_of_the_weights() -> None:
    net = load_denoiser("cpl_sigma15", "cpu")
    x = noisy_image(48, seed=1)
    with torch.no_grad():
        net(x)  # fills the cache
        net.layers[1].weight.mul_(0.5)
        net.log_gain[2].add_(0.3)
        net.step[3] *= 0.7
        got = net(x)
    want = docstring_loop(net, x)
    assert torch.allclose(got, want, rtol=0, atol=2e-6)


class _Reference(nn.Module):
    """The docstring loop as a module (for the applied map's Jacobian)."""

    def __init__(self, net: CplDenoiser) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return docstring_loop(self.net, x)


def test_measured_jacobian_norm_of_the_applied_map_is_unchanged() -> None:
    g = torch.Generator().manual_seed(3)
    amp = 0.8 + 0.2 * torch.rand(1, 48, 48, generator=g)
    obj = (amp * torch.exp(1j * torch.rand(1, 48, 48, generator=g))).to(torch.complex64)
    for stem in ("cpl_sigma15", "cpl_blind"):
        fast = applied_jacobian_norm(ComplexDenoiser(load_denoiser(stem, "cpu")), obj, 25)
        ref = applied_jacobian_norm(
            ComplexDenoiser(_Reference(load_denoiser(stem, "cpu"))), obj, 25
        )
        assert 0.9 < fast <= 1.0 + 1e-5
        assert abs(fast - ref) < 1e-5


class _Counting(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return self.net(x)


@pytest.mark.parametrize("t", [0.0, 1.0, 0.25])
def test_mix_runs_one_net_at_t_zero_or_one_and_both_between(t: float) -> None:
    low = _Counting(load_denoiser("cpl_sigma15", "cpu"))
    high = _Counting(load_denoiser("cpl_blind", "cpu"))
    mix = ConvexMix(low, high)
    mix.t = torch.full((2,), t)
    x = noisy_image(32, seed=2)
    with torch.no_grad():
        out = mix(x)
    want = (1 - t) * docstring_loop(low.net, x) + t * docstring_loop(high.net, x)
    assert torch.allclose(out, want, rtol=0, atol=3e-6)
    expected = {0.0: (1, 0), 1.0: (0, 1)}.get(t, (1, 1))  # (low calls, high calls)
    assert (low.calls, high.calls) == expected
