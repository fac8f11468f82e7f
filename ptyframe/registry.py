"""Hold every component ptyframe can build: one table per kind.

A component is a (kind, name, factory, config class) record. Every config class is a dataclass
whose ``name`` field defaults to the component's registered name; that field is how a resolved
config (a YAML file, a ``recon.h5`` attribute) selects its factory again. ``Registry.build``
turns a config (dataclass instance, ``DictConfig`` or plain mapping) into the component.

The registry also feeds Hydra's ConfigStore (``store_configs``): each component's config class
becomes the option ``name`` of the config group ``kind``, so ``engine=epie`` selects it and
``engine.alpha=0.3`` is type-checked against ``EpieConfig``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ptyframe.errors import (
    ConfigError,
    DuplicateComponentError,
    UnknownComponentError,
    find_ptyframe_error,
)

#: Kinds every registry knows, with the Hydra config group each one fills.
KINDS: dict[str, str] = {
    "dataset": "data",
    "simulation": "simulation",
    "phantom": "phantom",
    "probe": "probe",
    "scan": "scan",
    "propagator": "propagator",
    "forward_model": "physics",
    "loss": "loss",
    "regularizer": "regularizer",
    "optimizer": "optimizer",
    "engine": "engine",
    "prior_step": "prior",
    "denoiser": "denoiser",
    "distribution": "distribution",
    "metric": "metric",
    "callback": "callback",
    # chosen by a field of the ``data`` group (``data.reader=cxi``), not a Hydra group
    "reader": "data.reader",
}


#: How each kind is chosen on the command line (``{name}`` = the component's name):
#: ``(command, overrides, note)``; ``ptyframe plugins`` prints it and a test runs each one.
CHOOSE: dict[str, tuple[str, str, str]] = {
    "dataset": ("reconstruct", "data={name}", " (data=file takes data.path=FILE)"),
    "reader": (
        "reconstruct",
        "data.reader={name}",
        " (with data.path=FILE; by default chosen by looking inside the file)",
    ),
    "simulation": ("simulate", "simulation={name}", ""),
    "phantom": ("simulate", "phantom={name}", ""),
    "probe": ("simulate", "probe={name}", ""),
    "scan": ("simulate", "scan={name}", ""),
    "propagator": ("reconstruct", "physics=multislice physics.propagator={name}", ""),
    "forward_model": ("reconstruct", "physics={name}", ""),
    "loss": ("reconstruct", "loss={name}", ""),
    "regularizer": (
        "reconstruct",
        "+regularizer@regularizers.{name}={name} regularizers.{name}.weight=1e-4",
        " (any key after regularizers.; several may be added)",
    ),
    "optimizer": (
        "reconstruct",
        "engine=autodiff +optimizer@engine.optimizers.object={name}",
        " (also .probe, .positions, .geometry)",
    ),
    "engine": ("reconstruct", "engine={name}", ""),
    "prior_step": ("reconstruct", "engine=pine engine.rho=0.3", " (PINE's denoising step)"),
    "denoiser": ("reconstruct", "denoiser={name}", ""),
    "distribution": ("reconstruct", "distribution={name}", " (MPI modes under mpiexec)"),
    "metric": ("reconstruct", "metrics.names=[{name}]", " (a list, e.g. [frc,nrmse,ssim])"),
    "callback": (
        "reconstruct",
        "+callback@callbacks.{name}={name}",
        " (any key after callbacks.; several may be added)",
    ),
}


def choose_hint(kind: str, name: str = "<name>") -> str:
    """Return the command line that selects component ``name`` of ``kind``."""
    default = ("reconstruct", f"{KINDS.get(kind, kind)}={{name}}", "")
    command, template, _ = CHOOSE.get(kind, default)
    return f"ptyframe {command} {template.format(name=name)}"


@dataclass(frozen=True)
class BuildContext:
    """What a factory may need besides its own config: the registry and the run's device."""

    registry: Registry
    device: str = "cpu"
    dtype: str = "complex64"
    seed: int = 0
    #: The whole typed run config (``ptyframe.config.ReconstructConfig``) when built by the
    #: runner, so an engine can build the physics / loss / regularizers the run selected.
    run: Any = None


Factory = Callable[[Any, BuildContext], Any]


@dataclass(frozen=True)
class Component:
    """One registered component."""

    kind: str
    name: str
    factory: Factory
    config_cls: type
    provider: str
    doc: str = ""

    def fields(self) -> list[tuple[str, str, Any]]:
        """Return (field name, type name, default) for every config field but ``name``."""
        out = []
        for f in dataclasses.fields(self.config_cls):
            if f.name == "name":
                continue
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                default = f.default_factory()  # type: ignore[misc]
            else:
                default = "???"
            tname = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            out.append((f.name, tname, default))
        return out


@dataclass
class Registry:
    """One table per kind of (name -> Component)."""

    _tables: dict[str, dict[str, Component]] = field(default_factory=lambda: {k: {} for k in KINDS})

    # ------------------------------------------------------------------ registering
    def add(
        self,
        kind: str,
        name: str,
        factory: Factory,
        config_cls: type,
        *,
        provider: str = "ptyframe",
        doc: str | None = None,
    ) -> Component:
        """Register ``factory(config, context)`` under ``(kind, name)``.

        Raises ``DuplicateComponentError`` naming both providers if the name is taken, and
        ``ConfigError`` if the config class is not a dataclass with a ``name`` field that
        defaults to ``name``.
        """
        if kind not in self._tables:
            raise ConfigError(
                f"unknown component kind {kind!r} (from {provider}); kinds are: "
                + ", ".join(sorted(self._tables))
            )
        if not dataclasses.is_dataclass(config_cls):
            raise ConfigError(f"{kind} {name!r} from {provider}: config class must be a dataclass")
        names = {f.name: f for f in dataclasses.fields(config_cls)}
        if "name" not in names or names["name"].default != name:
            raise ConfigError(
                f"{kind} {name!r} from {provider}: {config_cls.__name__} needs a field "
                f"`name: str = {name!r}` so a saved config can find its factory again"
            )
        table = self._tables[kind]
        if name in table:
            other = table[name]
            raise DuplicateComponentError(
                f"{kind} {name!r} is registered twice: by {other.provider} and by {provider}. "
                "Rename one, or disable one plugin with PTYFRAME_DISABLE_PLUGINS=<entry point>."
            )
        text = doc if doc is not None else (factory.__doc__ or config_cls.__doc__ or "")
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
        if isinstance(cfg, str):
            return self.get(kind, cfg).config_cls()
        if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
            self._check_type(kind, cfg)
            return cfg
        mapping = _to_mapping(cfg)
        name = mapping.get("name")
        if not name:
            raise ConfigError(f"{kind} config has no `name` field: {dict(mapping)!r}")
        comp = self.get(kind, name)
        known = {f.name for f in dataclasses.fields(comp.config_cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise ConfigError(
                f"{kind} {name!r} has no field(s) {', '.join(unknown)}; "
                f"its fields are: {', '.join(sorted(known - {'name'}))}"
            )
        try:
            from omegaconf import OmegaConf

            # through OmegaConf so nested dataclass fields are built and type-checked too
            base = OmegaConf.structured(comp.config_cls)
            _clear_renamed(base, mapping)
            node = OmegaConf.merge(base, mapping)
            return OmegaConf.to_object(node)
        except Exception as exc:  # noqa: BLE001 - OmegaConf wraps errors from __post_init__
            inner = find_ptyframe_error(exc)
            if inner is not None:
                raise inner from None
            raise ConfigError(f"{kind} {name!r}: {exc}".split("\n")[0]) from None

    def build(self, kind: str, cfg: Any, context: BuildContext | None = None) -> Any:
        """Build the component that ``cfg`` names, passing it its typed config."""
        typed = self.config(kind, cfg)
        comp = self.get(kind, typed.name)
        return comp.factory(typed, context or BuildContext(registry=self))

    def _check_type(self, kind: str, cfg: Any) -> None:
        comp = self.get(kind, cfg.name)
        if not isinstance(cfg, comp.config_cls):
            raise ConfigError(
                f"{kind} {cfg.name!r} expects {comp.config_cls.__name__}, got {type(cfg).__name__}"
            )

    # ------------------------------------------------------------------ Hydra
    def store_configs(self, config_store: Any) -> None:
        """Store every component config as option ``name`` of Hydra group ``KINDS[kind]``."""
        for comp in self:
            if "." in KINDS[comp.kind]:  # selected by a field (data.reader), not a group
                continue
            config_store.store(group=KINDS[comp.kind], name=comp.name, node=comp.config_cls)


@dataclass
class ScopedRegistry:
    """A registry view that records which plugin registered each component."""

    registry: Registry
    provider: str

    def add(self, kind: str, name: str, factory: Factory, config_cls: type, **kw: Any) -> Component:
        kw.setdefault("provider", self.provider)
        return self.registry.add(kind, name, factory, config_cls, **kw)

    def __getattr__(self, item: str) -> Any:
        return getattr(self.registry, item)


def _clear_renamed(base: Any, mapping: Mapping[str, Any]) -> None:
    """Drop nested component defaults that ``mapping`` replaces by another component.

    ``{"optimizers": {"object": {"name": "gd"}}}`` must replace a default Adam config, not be
    merged into it (Hydra's ``optimizer@engine.optimizers.object=gd`` does the same).
    """
    from omegaconf import OmegaConf

    for key, value in mapping.items():
        if not isinstance(value, Mapping) or key not in base:
            continue
        current = base[key]
        if not OmegaConf.is_config(current):
            continue
        if "name" in value and "name" in current and value["name"] != current["name"]:
            try:
                base[key] = None
            except Exception:  # noqa: BLE001 - a typed field keeps its default
                pass
        else:
            _clear_renamed(current, value)


def _to_mapping(cfg: Any) -> dict[str, Any]:
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return dict(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if isinstance(cfg, Mapping):
        return dict(cfg)
    raise ConfigError(f"cannot read a component config from {type(cfg).__name__}")
