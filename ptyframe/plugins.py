"""Load plugins from the ``ptyframe`` entry-point group and build the registry from them.

Nothing happens at import time: call ``make_plugin_manager()`` (tests build a fresh one each
time). Entry points are loaded one by one so that a plugin that fails to import is named in
the error, together with the distribution that ships it. Setting
``PTYFRAME_DISABLE_PLUGINS=name1,name2`` skips those entry points (by entry-point name or by
distribution name).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

import pluggy

from ptyframe import hookspecs
from ptyframe.errors import PluginError, PtyframeError
from ptyframe.registry import Registry

ENTRY_POINT_GROUP = "ptyframe"
DISABLE_ENV = "PTYFRAME_DISABLE_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    """Where a loaded plugin came from."""

    name: str
    distribution: str
    version: str
    module: str

    @property
    def provider(self) -> str:
        return f"{self.name} ({self.distribution} {self.version})"


def disabled_plugins() -> set[str]:
    """Return the entry-point or distribution names listed in ``PTYFRAME_DISABLE_PLUGINS``."""
    raw = os.environ.get(DISABLE_ENV, "")
    return {p.strip() for p in raw.split(",") if p.strip()}


def _entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def make_plugin_manager(
    extra_plugins: list[tuple[str, object]] | None = None,
) -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """Return a plugin manager with every enabled entry point loaded, and their origins.

    ``extra_plugins`` (name, module-or-object) pairs are registered after the entry points;
    tests use them to add plugins without installing a distribution.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    skip = disabled_plugins()
    infos: dict[str, PluginInfo] = {}
    for ep in _entry_points():
        dist = ep.dist.name if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else "?"
        if ep.name in skip or dist in skip:
            continue
        if pm.get_plugin(ep.name) is not None:
            raise PluginError(
                f"two entry points are named {ep.name!r} in group {ENTRY_POINT_GROUP!r} "
                f"(one from {dist}); entry-point names must be unique, prefix them with the "
                "package name"
            )
        try:
            module = ep.load()
        except Exception as exc:  # any import failure is reported the same way
            raise PluginError(
                f"plugin {ep.name!r} from {dist} {version} failed to import "
                f"({ep.value}): {type(exc).__name__}: {exc}. Fix or reinstall it, or skip it "
                f"with {DISABLE_ENV}={ep.name}"
            ) from exc
        pm.register(module, name=ep.name)
        if not pm.get_hookcallers(module):  # an emptied or wrong module would add nothing
            raise PluginError(
                f"plugin {ep.name!r} from {dist} {version} ({ep.value}) implements no ptyframe "
                "hook (ptyframe_register, ptyframe_commands, ...): is the module empty or the "
                f"entry point wrong? Fix or reinstall it, or skip it with {DISABLE_ENV}={ep.name}"
            )
        infos[ep.name] = PluginInfo(ep.name, dist, version, ep.value)
    for name, plugin in extra_plugins or []:
        pm.register(plugin, name=name)
        infos[name] = PluginInfo(name, "(in-process)", "-", getattr(plugin, "__name__", name))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"a plugin implements a hook ptyframe does not define: {exc}") from exc
    return pm, infos


def build_registry(
    pm: pluggy.PluginManager | None = None,
    infos: dict[str, PluginInfo] | None = None,
) -> Registry:
    """Call every plugin's ``ptyframe_register`` with a registry view stamped with its name."""
    if pm is None:
        pm, infos = make_plugin_manager()
    infos = infos or {}
    registry = Registry()
    for impl in reversed(pm.hook.ptyframe_register.get_hookimpls()):
        info = infos.get(impl.plugin_name)
        provider = info.provider if info else impl.plugin_name
        try:
            impl.function(registry=registry.scoped(provider))
        except PtyframeError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {provider} failed while registering its components: "
                f"{type(exc).__name__}: {exc}. Skip it with {DISABLE_ENV}={impl.plugin_name}"
            ) from exc
    return registry


def config_searchpaths(pm: pluggy.PluginManager) -> list[str]:
    """Return the Hydra search-path entries every plugin asks for, in load order."""
    out: list[str] = []
    for paths in pm.hook.ptyframe_config_searchpath():
        out.extend(p for p in paths if p not in out)
    return out


_DEFAULT: Registry | None = None


def default_registry(refresh: bool = False) -> Registry:
    """Return the process-wide registry built from installed plugins (built on first use)."""
    global _DEFAULT
    if _DEFAULT is None or refresh:
        _DEFAULT = build_registry()
    return _DEFAULT


def set_default_registry(registry: Registry) -> None:
    """Make ``registry`` the process-wide one (the ``ptyframe`` command shares what it loaded)."""
    global _DEFAULT
    _DEFAULT = registry
