"""ptyframe: plugin-based ptychographic reconstruction (ePIE/rPIE, PINE, autodiff models).

Nothing heavy happens at import: the plugin manager and the registry are built on first use.

Public facade::

    import ptyframe
    result = ptyframe.reconstruct("demo.h5", engine="epie", epochs=50)
    reg = ptyframe.registry()          # every installed component
    data = ptyframe.simulate_case("particle_film_small")   # a named case of conf/case/
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ptyframe.hookspecs import hookimpl
from ptyframe.registry import BuildContext, Registry

__version__ = "0.1.0"

__all__ = [
    "BuildContext",
    "Registry",
    "__version__",
    "hookimpl",
    "reconstruct",
    "case_components",
    "registry",
    "simulate_case",
]

if TYPE_CHECKING:
    from ptyframe.runner import RunResult
    from ptyframe.simulation.simulate import SimulatedData


def registry(refresh: bool = False) -> Registry:
    """Return the registry built from every installed plugin (cached; ``refresh`` rebuilds)."""
    from ptyframe.plugins import default_registry

    return default_registry(refresh)


def reconstruct(data: Any, engine: Any = "epie", **kwargs: Any) -> RunResult:
    """Reconstruct ``data`` (a path or a ``PtychoDataset``) with ``engine``; see runner.run."""
    from ptyframe.runner import reconstruct as _reconstruct

    return _reconstruct(data, engine=engine, **kwargs)


def simulate_case(
    name: str, overrides: Any = (), registry: Registry | None = None, device: str = "cpu"
) -> SimulatedData:
    """Simulate the named case ``conf/case/NAME.yaml`` with Hydra ``overrides`` (in memory)."""
    from ptyframe.commands.simulate import simulate_case as _simulate_case

    return _simulate_case(name, list(overrides), registry, device)


def case_components(
    name: str, overrides: Any = (), registry: Registry | None = None, device: str = "cpu"
) -> tuple[Any, ...]:
    """Return ``(simulator, phantom, probe, scan)`` of the named case (for a script that
    drives the simulator itself)."""
    from ptyframe.commands.simulate import case_components as _case_components

    return _case_components(name, list(overrides), registry, device)
