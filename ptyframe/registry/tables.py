"""Keep the tables of registered components: add, look up, build, store in Hydra.

``Registry`` holds one table (name -> ``Component``) per kind of ``ptyframe.registry.kinds``;
``ScopedRegistry`` is the view a plugin registers through, which stamps the plugin as the
provider of every component it adds. ``BuildContext`` is what a build hands every factory
besides its config (the registry itself, the device, the run's switches): it lives beside the
registry it carries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ptyframe.errors import ConfigError, DuplicateComponentError, UnknownComponentError
from ptyframe.registry.component import Component, component_name
from ptyframe.registry.configs import as_config
from ptyframe.registry.factory import Factory, call_factory
from ptyframe.registry.kinds import KINDS, choose_hint
from ptyframe.registry.typed import TypedAdd


@dataclass(frozen=True)
class BuildContext:
    """What a factory may need besides its own config: the registry and the run's device.

    It holds no run config: collaborators built from the run config (an engine's physics,
    loss, regularizers, prior) are passed to constructors by ``ptyframe.compose``.
    ``deterministic`` is the run's switch (``ReconstructConfig.deterministic``): True asks
    every component for arithmetic that does not depend on timings (the same input gives
    the same bits in any process); False lets it pick by timing (e.g. FFTW_MEASURE plans).
    """

    registry: Registry
    device: str = "cpu"
    dtype: str = "complex64"
    seed: int = 0
    deterministic: bool = True


@dataclass
class Registry(TypedAdd):
    """One table per kind of (name -> Component)."""

    _tables: dict[str, dict[str, Component]] = field(default_factory=lambda: {k: {} for k in KINDS})

    # ------------------------------------------------------------------ registering
    def add(
        self,
        kind: str,
        config_cls: type,
        factory: Factory,
        *,
        provider: str = "ptyframe",
        doc: str | None = None,
    ) -> Component:
        """Register ``factory`` under ``(kind, config_cls's name)``; return the component.

        The name is the default of ``config_cls.name``. Raises ``DuplicateComponentError``
        naming both providers if the name is taken, and ``ConfigError`` for an unknown kind,
        a factory that cannot be called or a config class without a ``name`` default.
        """
        if kind not in self._tables:
            raise ConfigError(
                f"unknown component kind {kind!r} (from {provider}); kinds are: "
                + ", ".join(sorted(self._tables))
            )
        name = component_name(config_cls, kind, provider)
        if not callable(factory):
            raise ConfigError(f"{kind} {name!r} from {provider}: the factory must be callable")
        table = self._tables[kind]
        if name in table:
            other = table[name]
            raise DuplicateComponentError(
                f"{kind} {name!r} is registered twice: by {other.provider} and by {provider}. "
                "Rename one, or disable one plugin with PTYFRAME_DISABLE_PLUGINS=<entry point>."
            )
        text = doc if doc is not None else (config_cls.__doc__ or factory.__doc__ or "")
        comp = Component(kind, name, factory, config_cls, provider, text.strip().split("\n")[0])
        table[name] = comp
        return comp

    def scoped(self, provider: str) -> ScopedRegistry:
        """Return a view whose ``add`` stamps ``provider`` on every component."""
        return ScopedRegistry(self, provider)

    # ------------------------------------------------------------------ looking up
    def kinds(self) -> list[str]:
        return list(self._tables)

    def names(self, kind: str) -> list[str]:
        self._check_kind(kind)
        return sorted(self._tables[kind])

    def get(self, kind: str, name: str) -> Component:
        """Return the component or raise ``UnknownComponentError`` listing the choices."""
        self._check_kind(kind)
        try:
            return self._tables[kind][name]
        except KeyError:
            from ptyframe.overrides import did_you_mean

            names = self.names(kind)
            avail = ", ".join(names) or "(none registered)"
            raise UnknownComponentError(
                f"unknown {kind} {name!r}{did_you_mean(name, names)}; available: {avail}. "
                f"Choose one with `{choose_hint(kind)}`, or install the plugin that provides "
                "it (`ptyframe plugins` lists what is installed)."
            ) from None

    def __iter__(self) -> Iterator[Component]:
        for kind in self._tables:
            yield from (self._tables[kind][n] for n in sorted(self._tables[kind]))

    def _check_kind(self, kind: str) -> None:
        if kind not in self._tables:
            raise ConfigError(f"unknown component kind {kind!r}; kinds are: {', '.join(KINDS)}")

    # ------------------------------------------------------------------ building
    def config(self, kind: str, cfg: Any) -> Any:
        """Turn ``cfg`` (name, dataclass, DictConfig or mapping) into its config dataclass."""
        return as_config(kind, cfg, self.get)

    def build(
        self, kind: str, cfg: Any, context: BuildContext | None = None, **collaborators: Any
    ) -> Any:
        """Build the component that ``cfg`` names: ``factory(typed config, ...)``.

        ``collaborators`` (e.g. ``denoiser=``) are passed to the factory parameters that
        name them, the context to one named ``context`` (see ``call_factory``). An engine
        built here gets only the collaborators given; ``ptyframe.compose.build_engine``
        builds those of a run (physics, loss, regularizers, the denoising step).
        """
        typed = self.config(kind, cfg)
        comp = self.get(kind, typed.name)
        return call_factory(
            comp.factory, typed, context or BuildContext(registry=self), **collaborators
        )

    # ------------------------------------------------------------------ Hydra
    def store_configs(self, config_store: Any) -> None:
        """Store every component config as option ``name`` of Hydra group ``KINDS[kind]``."""
        for comp in self:
            if "." in KINDS[comp.kind]:  # selected by a field (data.reader), not a group
                continue
            config_store.store(group=KINDS[comp.kind], name=comp.name, node=comp.config_cls)


@dataclass
class ScopedRegistry(TypedAdd):
    """A registry view that records which plugin registered each component."""

    registry: Registry
    provider: str

    def add(
        self,
        kind: str,
        config_cls: type,
        factory: Factory,
        *,
        provider: str | None = None,
        doc: str | None = None,
    ) -> Component:
        """``Registry.add`` with this plugin as the provider (unless ``provider`` is given)."""
        return self.registry.add(
            kind, config_cls, factory, provider=provider or self.provider, doc=doc
        )

    def __getattr__(self, item: str) -> Any:
        return getattr(self.registry, item)
