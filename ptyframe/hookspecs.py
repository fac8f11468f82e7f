"""Declare the whole plugin API: four hooks.

A plugin is any module registered under the entry-point group ``ptyframe``::

    [project.entry-points.ptyframe]
    "mypkg.engines" = "mypkg.plugin"

whose module implements one or both hooks with ``@ptyframe.hookimpl``::

    @hookimpl
    def ptyframe_register(registry):
        registry.add_engine(MyEngineConfig, MyEngine)   # name: MyEngineConfig.name's default

``registry`` has one ``add_<kind>(config_cls, factory)`` per kind (``add_engine``,
``add_metric``, ``add_distribution``, ...; ``ptyframe.registry.TypedAdd``). The factory is
usually the component's class, called as ``factory(config, **collaborators)`` with the
collaborators its parameters name: an engine's ``physics``, ``loss``, ``regularizers``,
``prior`` and ``registry`` (``ptyframe.compose``), other kinds' ``context``.

    @hookimpl
    def ptyframe_config_searchpath():
        return ["pkg://mypkg.conf"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ptyframe.registry import ScopedRegistry

PROJECT = "ptyframe"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Add this plugin's components: ``registry.add_<kind>(config_cls, factory)``."""


@hookspec
def ptyframe_config_searchpath() -> list[str]:
    """Return Hydra search-path entries (``pkg://pkg.conf``) holding this plugin's YAML groups."""


@hookspec
def ptyframe_commands() -> dict[str, object]:
    """Return ``ptyframe`` subcommands: ``{name: main(argv: list[str]) -> int}``.

    The only way a command is added: the core's own (``simulate``, ``reconstruct``,
    ``plugins``, ``halfset``) come from ``ptyframe.commands.plugin``. ``ptyframe
    train-denoiser ...`` calls the ``main`` registered as ``"train-denoiser"`` with the
    remaining arguments (Hydra overrides). Each ``main`` has a ``__doc__`` whose first line
    ``ptyframe --help`` shows; a name two plugins offer is an error naming both.
    """


@hookspec
def ptyframe_hydra_overrides(command: str, overrides: list[str]) -> list[str]:
    """Return Hydra overrides to add to ``overrides`` before ``ptyframe COMMAND`` starts.

    ``command`` is ``reconstruct`` or ``simulate``; ``overrides`` are the user's. The MPI
    plugin uses it to give every rank rank 0's timestamp for Hydra's run directory. Return
    ``[]`` to add nothing; never override what the user set.
    """
