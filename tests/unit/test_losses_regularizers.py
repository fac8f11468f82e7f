"""Check the losses (values, minima, masks, gradients) and the regularizers."""

from __future__ import annotations

import math

import pytest
import torch

import ptyframe
from ptyframe.errors import ConfigError
from ptyframe.losses import LsqLoss, PoissonConfig, PoissonLoss, safe_sqrt
from ptyframe.physics.farfield import FarFieldPtychography
from ptyframe.regularizers import (
    L1,
    L1Config,
    ReweightedL1,
    ReweightedL1Config,
    TotalVariation,
    TvConfig,
)


def rand(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_lsq_is_the_squared_amplitude_difference_over_measured_pixels() -> None:
    pred, amps = rand((2, 4, 4), 0) * 9, rand((2, 4, 4), 1) * 3
    valid = rand((2, 4, 4), 2) > 0.3
    expected = ((pred.sqrt() - amps).square() * valid).sum()
    assert torch.allclose(LsqLoss()(pred, amps, valid), expected)
    assert torch.allclose(LsqLoss()(pred, amps, None), (pred.sqrt() - amps).square().sum())
    # pixels outside the mask do not matter at all
    pred2 = torch.where(valid, pred, pred * 100)
    assert torch.allclose(LsqLoss()(pred2, amps, valid), expected)


def test_poisson_is_the_negative_log_likelihood_up_to_a_constant() -> None:
    pred, amps = rand((3, 5), 0) * 9 + 0.1, rand((3, 5), 1) * 3
    loss = PoissonLoss(PoissonConfig(eps=1e-12))
    counts = amps.square()
    expected = (pred - counts * torch.log(pred)).sum()
    assert torch.allclose(loss(pred, amps, None), expected)
    # scaling both intensities by s scales the NLL's minimiser consistently
    s = PoissonLoss(PoissonConfig(scale=2.0, eps=1e-12))(pred, amps, None)
    assert torch.allclose(s, (2 * pred - 2 * counts * torch.log(2 * pred)).sum())


@pytest.mark.parametrize("loss", [LsqLoss(), PoissonLoss(PoissonConfig(eps=1e-12))])
def test_losses_are_minimal_at_the_measured_intensity(loss) -> None:
    amps = rand((2, 6, 6), 3) * 4 + 0.5
    pred = amps.square().clone().requires_grad_()
    (g,) = torch.autograd.grad(loss(pred, amps, None), pred)
    assert g.abs().max() < 1e-9
    for factor in (0.8, 1.25):
        assert loss(amps.square() * factor, amps, None) > loss(amps.square(), amps, None)


def test_safe_sqrt_has_a_finite_gradient_at_zero() -> None:
    x = torch.tensor([0.0, 4.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(safe_sqrt(x).sum(), x)
    assert torch.equal(g, torch.tensor([0.0, 0.25], dtype=torch.float64))


@pytest.mark.parametrize("loss", [LsqLoss(), PoissonLoss()])
def test_loss_gradients_through_the_far_field_model_match_finite_differences(loss) -> None:
    """Autograd of loss(model(object, probe)) vs finite differences, complex128."""
    g = torch.Generator().manual_seed(0)
    obj = (1 + 0.3 * torch.randn(1, 10, 10, generator=g, dtype=torch.complex128)).requires_grad_()
    probe = torch.randn(2, 6, 6, generator=g, dtype=torch.complex128).requires_grad_()
    pos = torch.tensor([[0.5, 1.25], [3.75, 2.5]], dtype=torch.float64, requires_grad=True)
    amps = rand((2, 6, 6), 4) * 2
    valid = rand((2, 6, 6), 5) > 0.2
    model = FarFieldPtychography()

    def f(o: torch.Tensor, p: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return loss(model.intensities(o, p, r), amps, valid)

    assert torch.autograd.gradcheck(f, (obj, probe, pos), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_poisson_config_rejects_non_positive_values() -> None:
    with pytest.raises(ConfigError, match="must be > 0"):
        PoissonConfig(scale=0.0)


# ---------------------------------------------------------------------- regularizers
def test_l1_is_the_weighted_mean_absolute_value_of_the_selected_fields() -> None:
    phase, absorption = rand((2, 5, 5), 0) - 0.5, rand((2, 5, 5), 1) - 0.5
    r = L1(L1Config(weight=0.1))
    expected = 0.1 * (phase.abs().mean() + absorption.abs().mean())
    assert torch.allclose(r(phase, absorption), expected)
    only = L1(L1Config(weight=0.1, components="phase"))
    assert torch.allclose(only(phase, absorption), 0.1 * phase.abs().mean())


def test_total_variation_of_a_step_edge() -> None:
    x = torch.zeros(1, 6, 8, dtype=torch.float64)
    x[..., 4:] = 2.0  # a vertical edge of height 2 across 6 rows
    tv = TotalVariation(TvConfig(weight=1.0, components="phase"))
    assert torch.allclose(tv(x, x), torch.tensor(2.0 * 6 / x.numel(), dtype=torch.float64))
    iso = TotalVariation(TvConfig(weight=1.0, components="phase", isotropic=True, eps=0.0))
    # the isotropic form crops to the [5, 7] interior: 5 rows cross the edge
    assert torch.allclose(iso(x, x), torch.tensor(2.0 * 5 / x.numel(), dtype=torch.float64))
    # a constant image has no variation
    assert tv(torch.ones_like(x), x) == 0
    # the z differences count only when asked for
    y = torch.stack([torch.zeros(6, 8), torch.ones(6, 8)]).double()
    assert tv(y, y) == 0
    tvz = TotalVariation(TvConfig(weight=1.0, components="phase", include_z=True))
    assert torch.allclose(tvz(y, y), torch.tensor(48.0 / y.numel(), dtype=torch.float64))


def test_reweighted_l1_weights_come_from_the_previous_object() -> None:
    phase, absorption = rand((3, 4), 0) + 0.5, rand((3, 4), 1) + 0.5
    r = ReweightedL1(ReweightedL1Config(weight=1.0, eps=1e-3))
    r.update(phase, absorption)
    # at the object the weights came from, each term is |x| / (|x| + eps) ~ 1
    value = r(phase, absorption)
    assert 1.99 < float(value) < 2.0
    # weights are state: they survive a state_dict round trip
    r2 = ReweightedL1(ReweightedL1Config(weight=1.0, eps=1e-3))
    r2.load_state_dict(r.state_dict())
    assert torch.equal(r2(phase * 2, absorption), r(phase * 2, absorption))


@pytest.mark.parametrize(
    "reg",
    [
        L1(L1Config()),
        TotalVariation(TvConfig()),
        TotalVariation(TvConfig(isotropic=True)),
        ReweightedL1(ReweightedL1Config()),
    ],
)
def test_regularizer_gradients_match_finite_differences(reg) -> None:
    phase = (rand((2, 5, 5), 0) - 0.5).requires_grad_()
    absorption = (rand((2, 5, 5), 1) - 0.5).requires_grad_()
    reg.update(phase.detach() + 0.1, absorption.detach())
    assert torch.autograd.gradcheck(reg, (phase, absorption), eps=1e-7, atol=1e-6)


def test_regularizer_configs_are_validated_and_registered() -> None:
    with pytest.raises(ConfigError, match="components"):
        L1Config(components="real")
    with pytest.raises(ConfigError, match="weight"):
        TvConfig(weight=-1.0)
    reg = ptyframe.registry()
    assert isinstance(reg.build("regularizer", "tv"), TotalVariation)
    assert isinstance(reg.build("regularizer", {"name": "l1", "weight": 0.5}), L1)
    assert isinstance(reg.build("regularizer", "reweighted_l1"), ReweightedL1)
    assert isinstance(reg.build("loss", "poisson"), PoissonLoss)
    assert isinstance(reg.build("loss", "lsq"), LsqLoss)


def test_regularizer_fields_of_a_transmission_are_phase_and_absorption() -> None:
    from ptyframe.physics.objects import ObjectModel, ObjectOptions

    model = ObjectModel(ObjectOptions(), 1e-10, 1e-8)
    o = torch.polar(
        torch.tensor([0.5, 0.9], dtype=torch.float64),
        torch.tensor([-0.3, 0.2], dtype=torch.float64),
    )
    phase, absorption = model.fields({"object": o})
    assert torch.allclose(phase, torch.tensor([0.3, -0.2], dtype=torch.float64))
    assert torch.allclose(absorption, -torch.log(torch.tensor([0.5, 0.9], dtype=torch.float64)))
    assert math.isclose(float(absorption[0]), math.log(2))
