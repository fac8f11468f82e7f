"""``ptyframe simulate out=FILE.h5 [overrides]``: a dataset with ground truth (conf/simulate.yaml).

The work is ``ptyframe.simulation.command.run_simulate``; this module is its Hydra command,
and ``simulate_case`` the same composition from Python: the named cases of ``conf/case/``
(``ptyframe simulate +case=NAME``) are the one home of every simulated case that the
benchmarks and the manual name, and this is how a script builds one::

    data = ptyframe.simulate_case("particle_film", ["simulation.photons_per_pattern=1e6"])

It lives here, above ``ptyframe.simulation``, because composing needs the command line's
Hydra setup (search paths of every plugin, the registry's structured configs).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ptyframe import cli
from ptyframe.errors import ConfigError

if TYPE_CHECKING:
    from ptyframe.registry import Registry
    from ptyframe.simulation.simulate import SimulatedData


def main(argv: list[str]) -> int:
    """Simulate a dataset with ground truth (out=FILE.h5)."""
    app = cli.current_app()

    def task(cfg: Any) -> None:
        from ptyframe.simulation.command import run_simulate

        path = run_simulate(cfg, app.registry)
        print(f"ptyframe: wrote {path}", file=sys.stderr)

    return cli.run_hydra_command("simulate", argv, task, validate, app)


def validate(body: Any) -> None:
    """Check the composed ``simulate`` config: an output file is given, every value typed."""
    from omegaconf import OmegaConf

    if OmegaConf.is_missing(body, "out"):
        raise ConfigError("no output file: give `out=FILE.h5`")
    OmegaConf.to_object(body)


def case_names() -> list[str]:
    """Return the names of the cases in ``conf/case/`` (``ptyframe simulate +case=NAME``)."""
    from importlib.resources import files

    folder = files("ptyframe_conf") / "case"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def compose_case(name: str, overrides: Sequence[str] = ()) -> Any:
    """Return the ``simulate`` config of ``ptyframe simulate +case=NAME OVERRIDES``.

    ``overrides`` are command-line overrides (``"scan.n_y=7"``); ``out`` need not be given.
    An unknown case is one ``ConfigError`` naming the cases there are.
    """
    from hydra import compose, initialize
    from hydra.core.global_hydra import GlobalHydra

    if name not in case_names():
        raise ConfigError(f"no case {name!r} in conf/case; choose one of {case_names()}")
    app = cli.current_app()
    cli.setup_hydra(app.registry, app.searchpaths)
    GlobalHydra.instance().clear()
    try:
        with initialize(version_base="1.3", config_path=None):
            return compose("simulate", overrides=[f"+case={name}", *overrides])
    finally:
        GlobalHydra.instance().clear()


def case_components(
    name: str, overrides: Sequence[str] = (), registry: Registry | None = None, device: str = "cpu"
) -> tuple[Any, ...]:
    """Return ``(simulator, phantom, probe, scan)`` of the named case, built on ``device``.

    For a script that drives the simulator itself (a chunked writer, a device of its own).
    """
    from ptyframe.simulation.command import build_components

    reg = registry if registry is not None else cli.current_app().registry
    return build_components(compose_case(name, overrides), reg, device)


def simulate_case(
    name: str, overrides: Sequence[str] = (), registry: Registry | None = None, device: str = "cpu"
) -> SimulatedData:
    """Simulate the named case of ``conf/case/`` with ``overrides``; return the data in memory.

    The same data, bit for bit, as ``ptyframe simulate +case=NAME OVERRIDES out=FILE.h5``
    writes (``SimulatedData.write`` writes it); ``device`` is where the simulator computes.
    """
    simulator, phantom, probe, scan = case_components(name, overrides, registry, device)
    data: SimulatedData = simulator.run(phantom, probe, scan)
    return data
