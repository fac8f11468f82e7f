"""The nonexpansive ``cpl`` denoiser family and the frozen normalisation: bound and measurement.

The claim under test is about the *whole* map PINE applies, ``O -> D(Re O) + i D(Im O)`` with
the normalisation included, complex object in, complex object out.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptyframe.denoise.apply import ComplexDenoiser, frozen_range
from ptyframe.denoise.check import applied_jacobian_norm
from ptyframe.denoise.cpl import (
    CplArch,
    CplDenoiser,
    layer_bounds,
    lipschitz_bound,
    step_margins,
)
from ptyframe.denoise.models import certificate, denoiser_bound
from ptyframe.denoise.realsn import operator_norm_bound
from ptyframe.denoise.weights import load_denoiser, model_from_checkpoint, save_weights
from ptyframe.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:DeprecationWarning")


def _trained_like(seed: int = 0, depth: int = 3, state: int = 2) -> CplDenoiser:
    """A RealSN model with random weights and the longest steps (t close to 2 / S^2)."""
    torch.manual_seed(seed)
    arch = CplArch(depth=depth, state_channels=state, hidden_channels=6, kernel_size=3)
    model = CplDenoiser(arch, realsn=True)
    with torch.no_grad():
        model.theta.fill_(8.0)  # 2 sigmoid(8) = 1.9993
        model.log_gain.normal_(1.0, 1.0, generator=torch.Generator().manual_seed(seed))
        for conv in model.layers:
            conv.bias.normal_(0.0, 0.3)
    return model.exported()


def _object(n: int, seed: int) -> torch.Tensor:
    """A weak-phase particle object exp(i phi) with Poisson-like amplitude noise, complex64."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n]
    phi = np.zeros((n, n))
    for _ in range(8):
        cy, cx, r = rng.uniform(0, n), rng.uniform(0, n), rng.uniform(2, 6)
        phi += 0.3 * ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
    amp = 1.0 + 0.05 * rng.standard_normal((n, n))
    return torch.tensor(amp * np.exp(1j * phi), dtype=torch.complex64)


def _applied_norm(den: ComplexDenoiser, obj: torch.Tensor, n_iter: int = 40) -> float:
    return applied_jacobian_norm(den, obj, n_iter)


# --------------------------------------------------------------------------- the bound
def test_exported_steps_respect_the_theorem_and_bound_is_one() -> None:
    model = _trained_like()
    margins = step_margins(model)
    assert all(1.95 < m <= 2.0 for m in margins)  # near the limit, not past it
    assert all(b == 1.0 for b in layer_bounds(model))
    assert lipschitz_bound(model) == 1.0
    for conv in model.layers:
        assert operator_norm_bound(conv.weight.double(), 128) <= 1.0 + 1e-6
    cert = certificate(model)
    assert cert["family"] == "cpl" and cert["denoiser_lipschitz_bound"] == 1.0


def test_too_long_step_breaks_the_bound_and_the_measurement_sees_it() -> None:
    model = _trained_like(seed=1, depth=1, state=1)
    s2 = operator_norm_bound(model.layers[0].weight.double(), 128) ** 2
    with torch.no_grad():
        model.step.fill_(6.0 / s2)  # t S^2 = 6: the layer can reach |1 - 6| = 5
        model.log_gain.fill_(-6.0)  # tanh(a z)/a ~ z: the layer is ~ linear I - t W^T W
    assert lipschitz_bound(model) == pytest.approx(5.0, rel=1e-6)
    den = ComplexDenoiser(model, normalisation="none")
    measured = _applied_norm(den, _object(24, 0))
    assert measured > 1.5  # the check below would fail for such a model


@pytest.mark.parametrize("normalisation", ["frozen", "none"])
def test_whole_applied_map_is_nonexpansive_at_real_inputs(normalisation: str) -> None:
    model = _trained_like(seed=2)
    bound = denoiser_bound(model)
    assert bound <= 1.0
    for seed in (0, 1):
        obj = _object(28, seed)
        den = ComplexDenoiser(model, normalisation=normalisation)
        den(_object(28, 10 + seed))  # freeze on another object first (as after sweep 1)
        measured = _applied_norm(den, obj)
        assert measured <= bound + 1e-4
        assert measured > 0.5  # the power iteration found a real direction
        # and a finite difference quotient between two noisy objects agrees
        other = obj + 0.02 * torch.randn(
            obj.shape, dtype=obj.dtype, generator=torch.Generator().manual_seed(seed)
        )
        q = (den(obj) - den(other)).abs().norm() / (obj - other).abs().norm()
        assert float(q) <= bound + 1e-4


def test_frozen_normalisation_keeps_the_first_range() -> None:
    model = _trained_like(seed=3, depth=2, state=1)
    den = ComplexDenoiser(model, normalisation="frozen")
    first, second = _object(20, 0), 2.0 * _object(20, 1) + 0.5
    den(first)
    lo, scale, _ = frozen_range(torch.stack([first.real, first.imag]))
    out = den(second)
    with torch.no_grad():
        ref = lo[0] + scale[0] * model(((second.real - lo[0]) / scale[0])[None, None])[0, 0]
    assert torch.allclose(out.real, ref, atol=1e-5)
    # the per-call min-max uses the second object's own range: a different map
    per_call = ComplexDenoiser(model, normalisation="minmax")(second)
    assert not torch.allclose(per_call, out, atol=1e-3)
    with pytest.raises(ConfigError, match="frozen denoiser normalisation"):
        den(torch.stack([first, first]))


def test_frozen_constant_parts_pass_through_and_flat_objects_defer() -> None:
    model = _trained_like(seed=5, depth=2, state=1)
    den = ComplexDenoiser(model, normalisation="frozen")
    flat = torch.full((8, 8), 0.7 + 0.0j, dtype=torch.complex64)  # a flat start object
    assert torch.equal(den(flat), flat) and den.frozen is None
    real = torch.complex(torch.linspace(0, 2, 64).reshape(8, 8), torch.zeros(8, 8))
    out = den(real)  # freezes now: Im is constant, so it stays untouched for the run
    assert den.frozen is not None and torch.equal(out.imag, real.imag)
    assert not torch.allclose(out.real, real.real, atol=1e-4)
    assert torch.equal(den(real + 0.1j).imag, (real + 0.1j).imag)


# --------------------------------------------------------------------------- files
def test_cpl_weights_round_trip_and_lightning_checkpoint(tmp_path) -> None:
    torch.manual_seed(4)
    arch = CplArch(depth=2, state_channels=2, hidden_channels=4, kernel_size=3)
    train = CplDenoiser(arch, realsn=True)
    x = torch.rand(1, 1, 12, 12)
    blob = {
        "state_dict": {f"model.{k}": v for k, v in train.state_dict().items()},
        "hyper_parameters": {"arch": arch.to_dict()},
    }
    from_ckpt = model_from_checkpoint(blob, "ckpt")
    assert isinstance(from_ckpt, CplDenoiser) and not from_ckpt.realsn
    assert lipschitz_bound(from_ckpt) <= 1.0
    path = save_weights(from_ckpt, tmp_path / "cpl.pt")
    back = load_denoiser(str(path))
    with torch.no_grad():
        assert torch.allclose(back(x), from_ckpt(x), atol=1e-6)
    assert back.arch == arch


def test_bad_cpl_arch_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="kernel_size must be odd"):
        CplArch(kernel_size=4)
    with pytest.raises(ConfigError, match="state_channels >= image_channels"):
        CplArch(state_channels=0)


def test_dct_start_is_a_parseval_shrinkage_and_near_identity_without_shrinking() -> None:
    from ptyframe.denoise.cpl import dct_filters, init_dct_shrinkage

    f = dct_filters(5).double()
    gram = torch.einsum("jyx,kyx->jk", f, f)
    assert torch.allclose(gram, torch.eye(24, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(f.sum(dim=(-2, -1)), torch.zeros(24, dtype=torch.float64), atol=1e-12)
    torch.manual_seed(0)
    model = CplDenoiser(CplArch(depth=3, hidden_channels=48, kernel_size=5), realsn=True)
    init_dct_shrinkage(model, (12.0, 12.0))  # thresholds ~ e^-12: nothing is shrunk
    model.eval()
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (model(x) - x).abs().max() < 2e-3
    init_dct_shrinkage(model)  # the default thresholds shrink: it denoises before training
    rng = np.random.default_rng(3)
    clean = np.full((48, 48), 0.3)
    clean[10:30, 5:40], clean[20:44, 25:35] = 0.8, 0.5
    noisy = clean + 25 / 255 * rng.standard_normal(clean.shape)
    with torch.no_grad():
        y = model(torch.tensor(noisy, dtype=torch.float32)[None, None])[0, 0].double().numpy()
    gain_db = 10 * np.log10(np.mean((noisy - clean) ** 2) / np.mean((y - clean) ** 2))
    assert gain_db > 2.0
    assert lipschitz_bound(model.exported()) <= 1.0


def test_grown_net_starts_as_its_source_and_keeps_the_bound() -> None:
    from ptyframe.denoise.cpl import grow_from

    torch.manual_seed(1)
    src_arch = CplArch(depth=2, state_channels=1, hidden_channels=6, kernel_size=3)
    src = CplDenoiser(src_arch, realsn=True)
    with torch.no_grad():
        src.theta.copy_(torch.tensor([0.5, -1.0]))  # t = 1.24, 0.54: far from the start
        src.log_gain.normal_(1.0, 1.0, generator=torch.Generator().manual_seed(1))
        for conv in src.layers:
            conv.bias.normal_(0.0, 0.3)
    src = src.exported()
    x = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y_src = src(x)
    assert (y_src - x).abs().max() > 0.05  # the source is far from the identity
    same = CplDenoiser(src_arch, realsn=True)
    assert grow_from(same, src) == 2
    same.eval()
    with torch.no_grad():
        assert (same(x) - y_src).abs().max() < 1e-5  # rescaled gain, bias, step: exact
    wide = CplArch(depth=5, state_channels=1, hidden_channels=9, kernel_size=3)
    big = CplDenoiser(wide, realsn=True)
    with torch.no_grad():
        big.log_gain.fill_(6.0)
        big.theta.fill_(-4.0)  # the ~identity start of init_dct_shrinkage
    grow_from(big, src)
    big.eval()
    with torch.no_grad():
        assert (big(x) - y_src).abs().max() < 5e-3
    assert lipschitz_bound(big.exported()) <= 1.0
    with pytest.raises(ConfigError, match="cannot grow"):
        grow_from(CplDenoiser(CplArch(depth=1, hidden_channels=6, kernel_size=3), True), src)
    with pytest.raises(ConfigError, match="cannot grow"):
        grow_from(CplDenoiser(CplArch(depth=3, hidden_channels=6, kernel_size=5), True), src)


# --------------------------------------------------------------------------- shipped cpl weights
@pytest.mark.parametrize("stem", ["cpl_blind", "cpl_sigma15"])
def test_shipped_cpl_weights_are_certified_and_measured_below_the_bound(stem: str) -> None:
    model = load_denoiser(stem)
    assert isinstance(model, CplDenoiser)
    bound = lipschitz_bound(model)
    assert bound <= 1.0
    assert all(m <= 2.0 for m in step_margins(model))
    den = ComplexDenoiser(model, normalisation="frozen")
    obj = _object(48, 4)
    den(
        obj
        + 0.03 * torch.randn(obj.shape, dtype=obj.dtype, generator=torch.Generator().manual_seed(0))
    )
    measured = applied_jacobian_norm(den, obj, n_iter=30)
    assert 0.5 < measured <= bound + 1e-4


def test_shipped_blind_cpl_denoises_at_several_noise_levels() -> None:
    model = load_denoiser("cpl_blind")
    rng = np.random.default_rng(42)
    clean = np.full((4, 64, 64), 0.5)
    for img in clean:  # overlapping grey rectangles: a crude dead-leaves picture
        for _ in range(15):
            y, x = rng.integers(0, 56, 2)
            h, w = rng.integers(4, 32, 2)
            img[y : y + h, x : x + w] = rng.uniform(0.1, 0.9)
    for sigma, min_gain_db in ((15, 2.0), (25, 3.0), (40, 3.0)):
        rng = np.random.default_rng(sigma)
        noisy = clean + sigma / 255 * rng.standard_normal(clean.shape)
        with torch.no_grad():
            out = model(torch.tensor(noisy, dtype=torch.float32)[:, None])[:, 0].double().numpy()
        gain = 10 * np.log10(np.mean((noisy - clean) ** 2) / np.mean((out - clean) ** 2))
        assert gain > min_gain_db, (sigma, gain)
