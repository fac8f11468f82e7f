"""PINE: rho = 0 is ePIE bit for bit; the denoising step is eq. 20 exactly."""

from __future__ import annotations

import pytest
import torch

from ptyframe.data.measurements import Measurements
from ptyframe.engines.pie import EpieConfig, PieEngine, RpieConfig
from ptyframe.engines.pine import PineConfig, PineEngine
from ptyframe.engines.prior import DenoiseStep, DenoiseStepConfig
from ptyframe.errors import ConfigError
from ptyframe.initial import InitConfig, initial_state

from synth import make_dataset


class BoxBlur:
    """A nonexpansive linear denoiser: 3x3 circular mean, applied to Re and Im (eq. 22)."""

    calls = 0

    def __call__(self, obj: torch.Tensor) -> torch.Tensor:
        BoxBlur.calls += 1
        out = torch.zeros_like(obj)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                out += torch.roll(obj, (dy, dx), dims=(-2, -1))
        return out / 9


@pytest.fixture(scope="module")
def data():
    ds = make_dataset(m=16, n=4, step=4.0, jitter=0.7, photons=1e4)
    return ds, Measurements.from_dataset(ds)


@pytest.mark.parametrize("inner", ["epie", "rpie"])
def test_rho_zero_is_the_inner_engine_bit_for_bit(data, inner):
    ds, meas = data
    a = initial_state(InitConfig(), ds, meas)
    b = a.clone()
    kw = (
        dict(epochs=5, alpha=0.3, beta=0.2)
        if inner == "epie"
        else dict(epochs=5, alpha=0.15, beta=5.0)
    )
    ref_cfg = EpieConfig(**kw) if inner == "epie" else RpieConfig(**kw)
    ref = PieEngine(ref_cfg)
    ref.prepare(meas, a, seed=3)
    ref_reports = list(ref.iterate())
    pine = PineEngine(
        PineConfig(rho=0.0, inner=inner, **kw), DenoiseStep(DenoiseStepConfig(rho=0.0), None)
    )
    pine.prepare(meas, b, seed=3)
    pine_reports = list(pine.iterate())
    assert torch.equal(a.object, b.object) and torch.equal(a.probe, b.probe)
    assert [r.data_error for r in ref_reports] == [r.data_error for r in pine_reports]


def test_denoising_step_is_eq_20(data):
    ds, meas = data
    a = initial_state(InitConfig(), ds, meas)
    b = a.clone()
    ref = PieEngine(EpieConfig(epochs=1, alpha=0.5, beta=0.1))
    ref.prepare(meas, a, seed=1)
    ref.step(0)
    rho = 0.3
    expected = (1 - rho) * a.object + rho * BoxBlur()(a.object)
    pine = PineEngine(
        PineConfig(epochs=1, alpha=0.5, beta=0.1, rho=rho),
        DenoiseStep(DenoiseStepConfig(rho=rho), BoxBlur()),
    )
    pine.prepare(meas, b, seed=1)
    report = pine.step(0)
    assert torch.allclose(b.object, expected, atol=1e-6)
    assert report.scalars["denoise_seconds"] >= 0


def test_denoise_every_and_start_schedule():
    step = DenoiseStep(DenoiseStepConfig(rho=0.4, every=3, start=2), BoxBlur())
    assert [e for e in range(10) if step.active(e)] == [2, 5, 8]


def test_rho_must_be_below_one_half():
    with pytest.raises(ConfigError, match="rho"):
        PineConfig(rho=0.5)
    with pytest.raises(ConfigError, match="pine.alpha"):
        PineConfig(inner="rpie", alpha=1.5)
    with pytest.raises(ConfigError, match="inner"):
        PineConfig(inner="dm")


def test_resume_applies_the_same_frozen_denoiser_as_the_uninterrupted_run(data):
    """Stop after 2 epochs, resume from the state dict: the result equals 4 epochs straight.

    Would catch a denoiser that freezes its normalisation again on the resumed object (the
    frozen range of the run's first object must travel in the engine's state).
    """
    from types import SimpleNamespace

    import ptyframe
    from ptyframe import compose
    from ptyframe.registry import BuildContext

    ds, meas = data
    registry = ptyframe.registry()
    ctx = BuildContext(registry)
    cfg = PineConfig(epochs=4, alpha=0.3, beta=0.2, rho=0.3)

    straight = initial_state(InitConfig(), ds, meas)
    eng = compose.build_engine(SimpleNamespace(engine=cfg), registry, ctx)
    eng.prepare(meas, straight, seed=1)
    for epoch in range(4):
        eng.step(epoch)

    first = initial_state(InitConfig(), ds, meas)
    eng = compose.build_engine(SimpleNamespace(engine=cfg), registry, ctx)
    eng.prepare(meas, first, seed=1)
    for epoch in range(2):
        eng.step(epoch)
    saved, resumed = eng.state_dict(), first.clone()
    assert "frozen" in saved["prior"]
    # a new process: a fresh denoiser
    eng = compose.build_engine(SimpleNamespace(engine=cfg), registry, ctx)
    eng.prepare(meas, resumed, seed=1)
    eng.load_state_dict(saved)
    for epoch in range(2, 4):
        eng.step(epoch)
    assert torch.equal(resumed.object, straight.object)
    assert torch.equal(resumed.probe, straight.probe)
