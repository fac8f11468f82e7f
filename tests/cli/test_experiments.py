"""The paper's studies as Hydra configs: experiments compose, sweeps expand to the right jobs.

Composes ``conf/experiment/*.yaml`` and ``conf/sweep/*.yaml`` in-process (the CLI's search
path), expands each sweep's ``hydra.sweeper.params`` into jobs the way Hydra's basic sweeper
does, and measures the overlap ratio the overlap experiments really produce.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

CONF = Path(__file__).resolve().parents[2] / "conf"
PAPER_10 = [round(0.1 * m, 10) for m in range(1, 11)]


@pytest.fixture(scope="module")
def hydra_env():
    """Return ``(compose, registry)`` with the CLI's search path and structured configs."""
    from hydra import compose, initialize
    from hydra.core.global_hydra import GlobalHydra

    from ptyframe import cli
    from ptyframe.plugins import build_registry, config_searchpaths, make_plugin_manager

    pm, infos = make_plugin_manager()
    registry = build_registry(pm, infos)
    cli.setup_hydra(registry, config_searchpaths(pm))
    GlobalHydra.instance().clear()
    with initialize(version_base="1.3", config_path=None):
        yield compose, registry
    GlobalHydra.instance().clear()


def _jobs(compose, sweep: str, extra: list[str] | None = None) -> list[list[str]]:
    """Return the override lists of every job of ``+sweep=<sweep>`` (basic sweeper order)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    h = compose("reconstruct", overrides=[f"+sweep={sweep}"], return_hydra_config=True)
    params = [f"{k}={v}" for k, v in h.hydra.sweeper.params.items()] + (extra or [])
    parsed = OverridesParser.create().parse_overrides(params)
    return [[f"+sweep={sweep}", *job] for job in BasicSweeper.split_arguments(parsed, None)[0]]


@pytest.mark.parametrize(
    "name,engine,alpha,beta,i0",
    [
        ("pine_lowdose", "pine", 0.5, 0.1, 1e2),
        ("epie_lowdose", "epie", 0.3, 0.2, 1e2),
        ("rpie_lowdose", "rpie", 0.15, 5.0, 1e2),
        ("pine_highdose", "pine", 0.8, 0.5, 1e4),
        ("epie_highdose", "epie", 0.4, 0.8, 1e4),
        ("rpie_highdose", "rpie", 0.1, 3.0, 1e4),
    ],
)
def test_dose_experiments_hold_the_papers_best_steps(hydra_env, name, engine, alpha, beta, i0):
    compose, registry = hydra_env
    cfg = compose("reconstruct", overrides=[f"+experiment={name}"])
    eng = registry.config("engine", cfg.engine)
    data = registry.config("dataset", cfg.data)
    assert (eng.name, eng.alpha, eng.beta, eng.epochs) == (engine, alpha, beta, 300)
    if engine == "pine":
        assert eng.rho == 0.49
    assert data.name == "simulated"
    sim = registry.config("simulation", {"name": "ptycho2d", **data.simulation})
    assert sim.i0_origin == i0 and sim.photons_per_pattern is None
    assert (sim.window_px, sim.pixel_size_m, sim.noise) == (64, 20e-9, "poisson")
    assert data.phantom["name"] == "particles" and cfg.metrics.every == 10


def test_every_experiment_file_composes_and_validates(hydra_env):
    compose, registry = hydra_env
    names = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
    assert len(names) >= 12
    for name in names:
        cfg = compose("reconstruct", overrides=[f"+experiment={name}"])
        registry.config("engine", cfg.engine)
        data = registry.config("dataset", cfg.data)
        registry.config("scan", data.scan)
        assert cfg.engine.epochs == 300, name
    # the case experiments leave the engine to the user, including plugin engines
    cfg = compose("reconstruct", overrides=["+experiment=lowdose", "engine=rpie"])
    assert cfg.engine.name == "rpie" and cfg.data.simulation.i0_origin == 1e2


@pytest.mark.parametrize(
    "tag,target", [("750", 0.75), ("625", 0.625), ("500", 0.5), ("375", 0.375)]
)
def test_overlap_experiments_really_give_the_ratio(hydra_env, tag, target):
    """Measure 1 - step / D on the simulated scan (jitter off) and the field of view."""
    from ptyframe.simulation.scans import nearest_neighbour_px
    from ptyframe.simulation.simulate import simulate_dataset

    compose, registry = hydra_env
    cfg = compose("reconstruct", overrides=[f"+experiment=overlap_{tag}"])
    data = registry.config("dataset", cfg.data)
    sim = dict(data.simulation)
    sim.update(noise="none")
    out = simulate_dataset(
        phantom=dict(data.phantom),
        probe=dict(data.probe),
        scan={**dict(data.scan), "jitter_px": 0.0},
        registry=registry,
        **sim,
    )
    pos = out.geometry.positions_px
    step = float(np.median(nearest_neighbour_px(pos)))
    assert 1.0 - step / out.attrs["probe_diameter_px"] == pytest.approx(target, abs=1e-6)
    fov = float(np.ptp(pos[:, 0]))
    assert 69.0 <= fov <= 77.0  # the same field of view at every ratio (decimation)
    assert sim["i0_origin"] == 1e4


def test_grid_sweeps_are_the_papers(hydra_env):
    compose, _ = hydra_env

    def grid(name: str) -> tuple[list[float], list[float]]:
        jobs = _jobs(compose, name)
        vals = [dict(o.split("=", 1) for o in job[1:]) for job in jobs]
        assert all(v["output.skip_done"] == "True" for v in vals)
        alphas = sorted({float(v["engine.alpha"]) for v in vals})
        betas = sorted({float(v["engine.beta"]) for v in vals})
        assert len(jobs) == len(alphas) * len(betas)
        return alphas, betas

    assert grid("alpha_beta") == (PAPER_10, PAPER_10)
    a, b = grid("alpha_beta_rpie")
    assert a == [round(0.05 * m, 10) for m in range(1, 11)]
    assert b == [0.5 * m for m in range(1, 11)]
    assert grid("alpha_beta_small") == ([0.1, 0.5, 0.9], [0.1, 0.5, 0.9])
    assert grid("alpha_beta_rpie_small") == ([0.05, 0.25, 0.45], [0.5, 2.5, 4.5])
    for name in ("alpha_beta_5x5", "alpha_beta_rpie_5x5"):
        a, b = grid(name)
        assert len(a) == len(b) == 5 and set(a) <= set(grid(name.replace("_5x5", ""))[0])


@pytest.mark.parametrize(
    "sweep,n_jobs,engines",
    [("overlap", 8, {"epie", "pine"}), ("overlap_rpie", 4, {"rpie"}), ("convergence", 12, None)],
)
def test_study_sweeps_expand_to_composable_jobs(hydra_env, sweep, n_jobs, engines):
    compose, registry = hydra_env
    jobs = _jobs(compose, sweep)
    assert len(jobs) == n_jobs
    seen = set()
    for job in jobs:
        cfg = compose("reconstruct", overrides=job)
        eng = registry.config("engine", cfg.engine)
        seen.add((eng.name, eng.alpha, eng.beta))
        assert cfg.output.skip_done is True
        if sweep == "convergence":
            assert cfg.metrics.every == 5 and eng.epochs in (150, 300)
        else:
            assert cfg.data.simulation.i0_origin == 1e4
    if engines is not None:
        assert {s[0] for s in seen} == engines
        assert {s[1:] for s in seen} == ({(1.0, 0.1)} if "pine" in engines else {(0.1, 1.0)})
    else:  # convergence: every engine at the paper's best steps for each dose
        assert seen == {
            ("epie", 0.3, 0.2),
            ("rpie", 0.15, 5.0),
            ("pine", 0.5, 0.1),
            ("epie", 0.4, 0.8),
            ("rpie", 0.1, 3.0),
            ("pine", 0.8, 0.5),
        }


def test_parallel_sweep_option_selects_the_joblib_launcher(hydra_env):
    compose, _ = hydra_env
    h = compose(
        "reconstruct", overrides=["+sweep=[alpha_beta_small,parallel]"], return_hydra_config=True
    )
    assert "joblib" in h.hydra.launcher._target_.lower()
    assert "engine.alpha" in h.hydra.sweeper.params


def test_particle_film_case_composes_for_simulate(hydra_env):
    """``ptyframe simulate +case=particle_film[_small]``: the ePIE defaults study geometry."""
    compose, registry = hydra_env
    full = compose("simulate", overrides=["+case=particle_film", "out=x.h5"])
    small = compose("simulate", overrides=["+case=particle_film_small", "out=x.h5"])
    assert (full.scan.n_y, full.scan.n_x, full.scan.step_px) == (25, 25, 16.0)
    assert full.scan.integer_positions and full.scan.jitter_px == 2.0
    assert full.simulation.photons_per_pattern == 1e5 and full.simulation.window_px == 128
    assert (full.phantom.radius_min_px, full.phantom.radius_max_px) == (2.0, 14.0)
    assert (small.scan.n_y, small.scan.n_x) == (9, 9) and small.probe == full.probe
    scan = registry.build("scan", dict(full.scan))
    pos = scan.generate(45.0, np.random.default_rng(0))
    assert pos.shape == (625, 2) and pos.max() <= 16 * 24 + 4


def test_every_named_case_composes_and_builds():
    """Every ``conf/case/*.yaml`` composes through ``compose_case`` and each of its components
    builds from the registry. Would catch: a case that names an unknown component or field,
    or a derived case (``particles_1e5`` on ``particles_1e6``) that no longer inherits."""
    import ptyframe
    from ptyframe.commands.simulate import case_names, compose_case

    reg = ptyframe.registry()
    names = case_names()
    assert {"natural_1e6", "particles_1e5", "lowdose", "engines_table", "particle_film"} <= set(
        names
    )
    for name in names:
        cfg = compose_case(name)
        for kind in ("simulation", "phantom", "probe", "scan"):
            reg.build(kind, cfg[kind])
    film = compose_case("particles_1e5")
    assert film.simulation.photons_per_pattern == 1e5 and film.scan.name == "step_raster"
    assert film.phantom.name == "particles" and film.phantom.max_phase_rad == 1.0


def test_simulate_case_is_the_simulator_on_the_composed_config(tmp_path):
    """``ptyframe.simulate_case(NAME, overrides)`` gives the same bits as
    ``simulate_dataset`` given the same components by hand, and an unknown name is one
    ``ConfigError`` listing the cases. Would catch: the loader dropping an override or a
    default of the case, or building a component other than the one composed."""
    import ptyframe
    from ptyframe.errors import ConfigError
    from ptyframe.simulation.simulate import simulate_dataset

    overrides = ["simulation.window_px=32", "scan.n=4", "scan.step_px=6.0", "scan.jitter_px=1.0"]
    got = ptyframe.simulate_case("particles_1e4", overrides)
    ref = simulate_dataset(
        {"name": "particles", "radius_min_px": 2.0, "radius_max_px": 14.0, "max_phase_rad": 1.0},
        "focused",
        {"name": "step_raster", "n": 4, "step_px": 6.0, "jitter_px": 1.0},
        window_px=32,
        photons_per_pattern=1e4,
        noise="poisson",
        seed=0,
    )
    assert got.patterns.shape == (1, 16, 32, 32)
    assert got.patterns.tobytes() == ref.patterns.tobytes()
    assert got.truth.object.tobytes() == ref.truth.object.tobytes()
    with pytest.raises(ConfigError, match="no case 'nope' in conf/case; choose one of"):
        ptyframe.simulate_case("nope")
