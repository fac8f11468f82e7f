"""Engines built with their collaborators: ``ptyframe.compose`` and typed registration.

The denoising step as a collaborator of mPIE and LSQML is checked against the mixing
formula ``O <- (1 - rho) O + rho D(O)`` (PINE eq. 20) with known linear denoisers, computed
here from an engine run without it; ``rho = 0`` must be that engine bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

import ptyframe
from ptyframe import compose
from ptyframe.data.measurements import Measurements
from ptyframe.engines.lsqml import LsqmlConfig, LsqmlEngine
from ptyframe.engines.mpie import MpieConfig, MpieEngine
from ptyframe.engines.pie import EpieConfig, PieEngine
from ptyframe.engines.pine import PineConfig
from ptyframe.engines.prior import DenoiseStep, DenoiseStepConfig
from ptyframe.errors import ConfigError
from ptyframe.initial import InitConfig, initial_state
from ptyframe.registry import BuildContext, Registry, call_factory

from synth import make_dataset

CONF = Path(__file__).resolve().parents[1] / "conf"


class Halve:
    """The linear 'denoiser' D(O) = O / 2 (the step becomes O -> (1 - rho / 2) O)."""

    def __call__(self, obj: torch.Tensor) -> torch.Tensor:
        return 0.5 * obj


class Blur:
    """A fixed linear blur: the 3x3 circular mean, applied to the complex object."""

    def __call__(self, obj: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(obj)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                out += torch.roll(obj, (dy, dx), dims=(-2, -1))
        return out / 9


@pytest.fixture(scope="module")
def data():
    ds = make_dataset(m=16, n=4, step=4.0, jitter=0.7, photons=1e4)
    return ds, Measurements.from_dataset(ds)


def _run(engine, data, epochs: int, start=None):
    ds, meas = data
    state = start.clone() if start is not None else initial_state(InitConfig(), ds, meas)
    engine.prepare(meas, state, seed=2)
    reports = [engine.step(e) for e in range(epochs)]
    return state, reports


ENGINES = [
    ("mpie", MpieEngine, lambda **kw: MpieConfig(epochs=3, momentum_every=5, **kw), Halve),
    ("lsqml", LsqmlEngine, lambda **kw: LsqmlConfig(epochs=3, batch_size=4, **kw), Blur),
]


@pytest.mark.parametrize("name,engine_cls,make_cfg,denoiser", ENGINES)
def test_denoising_step_after_an_epoch_is_the_mixing_formula(
    data, name, engine_cls, make_cfg, denoiser
):
    rho = 0.3
    plain_state, _ = _run(engine_cls(make_cfg()), data, 1)
    state, reports = _run(
        engine_cls(make_cfg(rho=rho), prior=DenoiseStep(DenoiseStepConfig(rho=rho), denoiser())),
        data,
        1,
    )
    d = denoiser()(plain_state.object)
    expect = (1 - rho) * plain_state.object + rho * d
    assert torch.allclose(state.object, expect, atol=1e-6), name
    assert not torch.allclose(state.object, plain_state.object, atol=1e-3)
    assert torch.equal(state.probe, plain_state.probe)  # the prior touches the object only
    assert reports[0].scalars["denoise_seconds"] >= 0


@pytest.mark.parametrize("name,engine_cls,make_cfg,denoiser", ENGINES)
def test_rho_zero_is_the_engine_exactly(data, name, engine_cls, make_cfg, denoiser):
    plain_state, plain = _run(engine_cls(make_cfg()), data, 3)
    prior = DenoiseStep(DenoiseStepConfig(rho=0.0), None)
    state, reports = _run(engine_cls(make_cfg(rho=0.0), prior=prior), data, 3)
    assert torch.equal(state.object, plain_state.object), name
    assert torch.equal(state.probe, plain_state.probe)
    assert [r.data_error for r in reports] == [r.data_error for r in plain]
    # composed from a config with rho = 0, no prior (and no denoiser) is built at all
    engine = compose.build_engine(SimpleNamespace(engine=make_cfg(rho=0.0)), ptyframe.registry())
    assert engine.prior is None


def test_mpie_schedule_denoises_on_the_chosen_epochs_only(data):
    calls = []

    def counting(obj):
        calls.append(1)
        return 0.5 * obj

    cfg = MpieConfig(epochs=5, rho=0.2, denoise_every=2, denoise_start=1)
    prior = DenoiseStep(cfg.prior_config(), counting)
    _, reports = _run(MpieEngine(cfg, prior=prior), data, 5)
    assert len(calls) == 2  # epochs 1 and 3
    assert [r.scalars["denoise_seconds"] > 0 for r in reports] == [0, 1, 0, 1, 0]


# ---------------------------------------------------------------------- composition
@dataclass
class HalveConfig:
    """A test denoiser: D(O) = O / 2."""

    name: str = "halve"


def _registry_with_halve() -> Registry:
    from ptyframe.plugins import build_registry

    reg = build_registry()  # a fresh one: the default registry is shared
    reg.add_denoiser(HalveConfig, lambda config: Halve())
    return reg


@pytest.mark.parametrize(
    "engine",
    [MpieConfig(rho=0.3), LsqmlConfig(rho=0.3), PineConfig(), {"name": "autodiff", "rho": 0.2}],
)
def test_the_prior_is_built_with_the_runs_denoiser(engine):
    reg = _registry_with_halve()
    eng = compose.build_engine(SimpleNamespace(engine=engine, denoiser="halve"), reg)
    assert isinstance(eng.prior, DenoiseStep) and isinstance(eng.prior.denoiser, Halve)
    assert eng.prior.config.rho == pytest.approx(float(eng.config.rho))


def test_pine_is_the_pie_config_plus_a_prior():
    reg = _registry_with_halve()
    cfg = reg.config("engine", {"name": "pine", "alpha": 0.5, "rho": 0.3, "inner": "rpie"})
    assert isinstance(cfg, PineConfig) and cfg.pie_rule == "rpie"
    eng = compose.build_engine(SimpleNamespace(engine=cfg, denoiser="halve"), reg)
    assert type(eng) is PieEngine and eng.rule(True).rpie and eng.config.alpha == 0.5
    assert eng.prior.config.rho == 0.3 and not eng.prefers_single_thread
    plain = compose.build_engine(SimpleNamespace(engine="epie"), reg)
    assert plain.prior is None and plain.prefers_single_thread


@pytest.mark.parametrize(
    "fields,match",
    [
        ({"physics": "multislice"}, "physics=multislice is not used by engine epie"),
        ({"loss": "poisson"}, "loss=poisson is not used by engine epie"),
        ({"regularizers": {"tv": {"name": "tv"}}}, "regularizers.tv is not used by engine epie"),
        ({"denoiser": "halve"}, "denoiser=halve is not used by engine epie"),
        (
            {"denoiser": {"name": "cpl_auto", "tile_px": 64}},
            "denoiser=cpl_auto with options changed",
        ),
        (
            {"denoiser": {"name": "dncnn"}},
            "denoiser=dncnn is not used by engine epie",
        ),
    ],
)
def test_a_field_the_engine_does_not_use_is_an_error_naming_it(fields, match):
    reg = _registry_with_halve()
    with pytest.raises(ConfigError, match=match) as info:
        compose.build_engine(SimpleNamespace(engine="epie", **fields), reg)
    assert "remove it" in str(info.value)


def test_defaults_and_a_denoiser_at_rho_zero_are_allowed():
    from ptyframe.denoise.plugin import CplAutoConfig
    from ptyframe.losses.base import LsqConfig
    from ptyframe.physics.farfield import FarFieldConfig

    reg = _registry_with_halve()
    run = SimpleNamespace(
        engine="epie", physics=FarFieldConfig(), loss=LsqConfig(), denoiser=CplAutoConfig()
    )
    assert compose.build_engine(run, reg).prior is None
    run = SimpleNamespace(engine=PineConfig(rho=0.0), denoiser="halve")
    assert compose.build_engine(run, reg).prior is None


def test_group_defaults_are_those_of_reconstruct_yaml():
    defaults = {}
    for item in yaml.safe_load((CONF / "reconstruct.yaml").read_text())["defaults"]:
        if isinstance(item, dict):
            defaults.update(item)
    for key, (_, name) in compose.GROUP_DEFAULTS.items():
        assert defaults[key] == name, key


def test_todays_command_lines_compose_and_build(monkeypatch):
    from hydra import compose as hydra_compose
    from hydra import initialize
    from hydra.core.global_hydra import GlobalHydra

    from ptyframe import cli
    from ptyframe.plugins import build_registry, config_searchpaths, make_plugin_manager
    from ptyframe.runner import typed_config

    pm, infos = make_plugin_manager()
    registry = build_registry(pm, infos)
    registry.add_denoiser(HalveConfig, lambda config: Halve())
    cli.setup_hydra(registry, config_searchpaths(pm))
    GlobalHydra.instance().clear()
    lines = {
        "engine=pine engine.alpha=0.5 engine.rho=0.3 engine.inner=rpie": ("pine", 0.3),
        "engine=epie_lowdose": ("epie", None),
        "engine=rpie_lowdose": ("rpie", None),
        "+experiment=lowdose": ("epie", None),
        "+experiment=pine_lowdose": ("pine", 0.49),
        "+experiment=lowdose engine=mpie engine.rho=0.2": ("mpie", 0.2),
        "+experiment=lowdose engine=raar engine.rho=0.2": ("raar", 0.2),
    }
    try:
        with initialize(version_base="1.3", config_path=None):
            for line, (name, rho) in lines.items():
                extra = [] if "experiment" in line else ["data.path=x.h5"]
                cfg = typed_config(hydra_compose("reconstruct", overrides=line.split() + extra))
                if rho is not None:
                    cfg.denoiser = "halve"  # the shipped DnCNN is tested elsewhere
                eng = compose.build_engine(cfg, registry, BuildContext(registry))
                assert eng.config.name == name, line
                assert (eng.prior is None) == (rho is None), line
                if rho is not None:
                    assert eng.prior.config.rho == pytest.approx(rho), line
            bad = hydra_compose("reconstruct", overrides=["physics=multislice", "data.path=x.h5"])
            bad = typed_config(bad)
            with pytest.raises(ConfigError, match="physics=multislice is not used by engine epie"):
                compose.build_engine(bad, registry)
    finally:
        GlobalHydra.instance().clear()


# ---------------------------------------------------------------------- typed registration
@dataclass
class ToyEngineConfig(EpieConfig):
    """A third-party engine config: the name is the only thing written once."""

    name: str = "toy_epie"


def test_add_takes_the_name_from_the_config_class():
    reg = Registry()
    comp = reg.add_engine(ToyEngineConfig, PieEngine)
    assert comp.name == "toy_epie" and reg.get("engine", "toy_epie") is comp
    assert comp.wants == ("prior", "context")
    assert comp.doc.startswith("A third-party engine config")
    eng = reg.build("engine", ToyEngineConfig(epochs=2))
    assert isinstance(eng, PieEngine) and not eng.rule(True).rpie and eng.prior is None


def test_a_config_class_without_a_name_default_is_refused():
    @dataclass
    class Nameless:
        epochs: int = 1

    with pytest.raises(ConfigError, match="needs a field `name: str"):
        Registry().add_engine(Nameless, PieEngine)
    with pytest.raises(ConfigError, match="must be a dataclass"):
        Registry().add_metric(object, PieEngine)


def test_the_old_spelling_is_refused_with_the_new_one_named():
    """``add(kind, name, factory, config_cls)`` (never released) is one clear error."""
    reg = Registry()
    with pytest.raises(ConfigError, match=r"not a name; use registry\.add_engine"):
        reg.add("engine", "toy_epie", PieEngine)  # type: ignore[arg-type]
    assert reg.names("engine") == []
    assert reg.add_engine(ToyEngineConfig, PieEngine).name == "toy_epie"


def test_factories_get_the_collaborators_their_parameters_name():
    ctx = object()
    assert call_factory(lambda c: ("c", c), 1, ctx) == ("c", 1)
    assert call_factory(lambda c, ctx: (c, ctx), 1, ctx) == (1, ctx)  # build(config, ctx)
    assert call_factory(
        lambda c, context=None, denoiser=None: (context, denoiser), 1, ctx, denoiser=5
    ) == (ctx, 5)
    with pytest.raises(ConfigError, match="needs `physics`"):
        call_factory(lambda c, prior, physics: None, 1, ctx, prior=2)


def test_an_engine_with_rho_but_no_prior_is_refused():
    """PINE built without its denoising step would be plain ePIE: an error names the fix."""
    with pytest.raises(ConfigError, match="pine.rho = 0.49 needs the denoising step"):
        ptyframe.registry().build("engine", "pine")
    with pytest.raises(ConfigError, match="compose.build_engine"):
        MpieEngine(MpieConfig(rho=0.2))


def test_the_context_holds_no_run_config_and_a_distribution_asks_for_it():
    from ptyframe.distributed.base import SingleConfig, SingleProcess

    @dataclass
    class AskingConfig(SingleConfig):
        name: str = "asking"

    class Asking(SingleProcess):
        def __init__(self, config: AskingConfig, run=None) -> None:
            super().__init__(config)
            self.run = run

    reg = Registry()
    reg.add_distribution(SingleConfig, SingleProcess)
    reg.add_distribution(AskingConfig, Asking)
    ctx = BuildContext(reg)
    assert not hasattr(ctx, "run")
    run = SimpleNamespace(distribution="asking", engine="epie")
    assert compose.build_distribution(run, reg, ctx).run is run
    single = compose.build_distribution(SimpleNamespace(distribution=None), reg, ctx)
    assert type(single) is SingleProcess
