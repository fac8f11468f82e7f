"""Hold every component ptyframe can build: one table per kind.

A component is a (kind, config class, factory) record; its name is the default of the config
class's ``name`` field, so each component is written once::

    registry.add_engine(EpieConfig, PieEngine)   # or: registry.add("engine", EpieConfig, PieEngine)
    registry.add_metric(FrcMetricConfig, FrcMetric)

That field is also how a resolved config (a YAML file, a ``recon.h5`` attribute) selects its
factory again. The factory is usually the component's class; it is called as
``factory(config, **wanted)``: of its parameters after the config, those named like a
collaborator the builder offers get it (``context``: the ``BuildContext``; for engines,
``ptyframe.compose.build_engine`` offers ``physics``, ``loss``, ``regularizers``, ``prior`` and
``registry``), and a single other required parameter gets the context (``build(config,
ctx)`` functions). ``Registry.build`` turns a config (dataclass instance, ``DictConfig`` or
plain mapping) into the component.

The registry also feeds Hydra's ConfigStore (``store_configs``): each component's config class
becomes the option ``name`` of the config group ``kind``, so ``engine=epie`` selects it and
``engine.alpha=0.3`` is type-checked against ``EpieConfig``.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
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
    """What a factory may need besides its own config: the registry and the run's device.

    It holds no run config: collaborators built from the run config (an engine's physics,
    loss, regularizers, prior) are passed to constructors by ``ptyframe.compose``.
    """

    registry: Registry
    device: str = "cpu"
    dtype: str = "complex64"
    seed: int = 0


#: ``factory(config, **collaborators)``: a component class or a function (see module doc).
Factory = Callable[..., Any]


def _parameters(factory: Factory) -> list[inspect.Parameter]:
    """Return the factory's parameters after the config (a class: its ``__init__``'s)."""
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: config only
        return []
    named = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return named[1:]


def wanted(factory: Factory) -> tuple[str, ...]:
    """Return the names of the parameters ``factory`` takes after its config."""
    return tuple(p.name for p in _parameters(factory))


def call_factory(factory: Factory, config: Any, context: Any, **offered: Any) -> Any:
    """Call ``factory(config, ...)`` with the offered collaborators its parameters name.

    ``context`` goes to a parameter named ``context``, or else to the first parameter after
    the config if it is required and names no offered collaborator (``f(config, ctx)``). A
    required parameter left without a value is a ``ConfigError`` naming it.
    """
    kwargs: dict[str, Any] = {}
    params = _parameters(factory)
    for i, p in enumerate(params):
        if p.name in offered:
            kwargs[p.name] = offered[p.name]
        elif p.name == "context" or (i == 0 and p.default is p.empty):
            kwargs[p.name] = context
        elif p.default is p.empty:
            name = getattr(factory, "__qualname__", repr(factory))
            raise ConfigError(
                f"{name} needs `{p.name}`, which its builder does not offer (offered: "
                + ", ".join(["context", *offered])
                + ")"
            )
    return factory(config, **kwargs)


@dataclass(frozen=True)
class Component:
    """One registered component."""

    kind: str
    name: str
    factory: Factory
    config_cls: type
    provider: str
    doc: str = ""

    @property
    def wants(self) -> tuple[str, ...]:
        """The factory's parameters after the config (the collaborators it is built with)."""
        return wanted(self.factory)

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


def component_name(config_cls: type, kind: str = "component", provider: str = "") -> str:
    """Return the name a config class gives its component: its ``name`` field's default.

    Raises ``ConfigError`` if ``config_cls`` is not a dataclass with such a default.
    """
    where = f" (from {provider})" if provider else ""
    if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
        raise ConfigError(f"{kind} config {config_cls!r}{where}: config class must be a dataclass")
    names = {f.name: f for f in dataclasses.fields(config_cls)}
    default = names["name"].default if "name" in names else dataclasses.MISSING
    if not isinstance(default, str) or not default:
        raise ConfigError(
            f"{kind} {config_cls.__name__}{where} needs a field `name: str = '<name>'`: its "
            "default is the component's name, so a saved config can find its factory again"
        )
    return default


class TypedAdd:
    """One registering method per kind (the name is taken from the config class).

    ``registry.add_engine(EpieConfig, PieEngine)`` is ``registry.add("engine", EpieConfig,
    PieEngine)``; see the module docstring for how each factory is called.
    """

    def add(self, kind: str, config_cls: Any, factory: Any = None, *a: Any, **kw: Any) -> Any:
        raise NotImplementedError

    def add_dataset(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a dataset source: ``factory(config, context) -> PtychoDataset``."""
        return self.add("dataset", config_cls, factory, **kw)

    def add_reader(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a file reader (``data.reader=<name>``)."""
        return self.add("reader", config_cls, factory, **kw)

    def add_simulation(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a simulator (``ptyframe simulate simulation=<name>``)."""
        return self.add("simulation", config_cls, factory, **kw)

    def add_phantom(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a phantom (simulated object)."""
        return self.add("phantom", config_cls, factory, **kw)

    def add_probe(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a simulated probe."""
        return self.add("probe", config_cls, factory, **kw)

    def add_scan(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a scan pattern."""
        return self.add("scan", config_cls, factory, **kw)

    def add_propagator(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a propagator (``physics.propagator=<name>``)."""
        return self.add("propagator", config_cls, factory, **kw)

    def add_forward_model(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a forward model (``physics=<name>``; the ``physics`` of ``engine=autodiff``)."""
        return self.add("forward_model", config_cls, factory, **kw)

    def add_loss(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a data-mismatch term (``loss=<name>``)."""
        return self.add("loss", config_cls, factory, **kw)

    def add_regularizer(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a regularizer (``regularizers.<key>=<name>``)."""
        return self.add("regularizer", config_cls, factory, **kw)

    def add_optimizer(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add an optimizer: ``factory(config) -> maker(params)``."""
        return self.add("optimizer", config_cls, factory, **kw)

    def add_engine(self, config_cls: type, engine_cls: Factory, **kw: Any) -> Component:
        """Add an engine: ``engine_cls(config, **collaborators)`` (``ptyframe.compose``).

        The collaborators are the constructor's parameters after the config, among
        ``physics``, ``loss``, ``regularizers``, ``prior`` and ``registry``.
        """
        return self.add("engine", config_cls, engine_cls, **kw)

    def add_prior_step(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a prior step: ``factory(config, denoiser)`` (an engine's ``prior``)."""
        return self.add("prior_step", config_cls, factory, **kw)

    def add_denoiser(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a denoiser (``denoiser=<name>``; the prior step's ``D``)."""
        return self.add("denoiser", config_cls, factory, **kw)

    def add_distribution(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a distribution (``distribution=<name>``; MPI modes)."""
        return self.add("distribution", config_cls, factory, **kw)

    def add_metric(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a metric against the truth (``metrics.names=[<name>]``)."""
        return self.add("metric", config_cls, factory, **kw)

    def add_callback(self, config_cls: type, factory: Factory, **kw: Any) -> Component:
        """Add a run callback (``+callback@callbacks.<key>=<name>``); see ptyframe.callbacks."""
        return self.add("callback", config_cls, factory, **kw)


@dataclass
class Registry(TypedAdd):
    """One table per kind of (name -> Component)."""

    _tables: dict[str, dict[str, Component]] = field(default_factory=lambda: {k: {} for k in KINDS})

    # ------------------------------------------------------------------ registering
    def add(
        self,
        kind: str,
        config_cls: Any,
        factory: Any = None,
        legacy_config_cls: Any = None,
        *,
        provider: str = "ptyframe",
        doc: str | None = None,
    ) -> Component:
        """Register ``factory`` under ``(kind, config_cls's name)``; return the component.

        The name is the default of ``config_cls.name``. The deprecated spelling
        ``add(kind, name, factory, config_cls)`` still works (with a ``DeprecationWarning``)
        if ``name`` is that default. Raises ``DuplicateComponentError`` naming both providers
        if the name is taken, and ``ConfigError`` for an unknown kind or a config class
        without a ``name`` default.
        """
        if kind not in self._tables:
            raise ConfigError(
                f"unknown component kind {kind!r} (from {provider}); kinds are: "
                + ", ".join(sorted(self._tables))
            )
        if isinstance(config_cls, str):  # add(kind, name, factory, config_cls)
            name, factory, config_cls = config_cls, factory, legacy_config_cls
            warnings.warn(
                f"registry.add({kind!r}, {name!r}, factory, config_cls) is the old spelling; "
                f"use registry.add_{kind}(config_cls, factory) (the name is config_cls.name)",
                DeprecationWarning,
                stacklevel=2,
            )
            if component_name(config_cls, kind, provider) != name:
                raise ConfigError(
                    f"{kind} {name!r} from {provider}: {config_cls.__name__} needs a field "
                    f"`name: str = {name!r}` so a saved config can find its factory again"
                )
        else:
            name = component_name(config_cls, kind, provider)
        if factory is None or not callable(factory):
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
            from ptyframe.overrides import did_you_mean

            fields = sorted(known - {"name"})
            said = ", ".join(f"{u}{did_you_mean(u, fields)}" for u in unknown)
            raise ConfigError(
                f"{kind} {name!r} has no field(s) {said}; its fields are: {', '.join(fields)}"
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
class ScopedRegistry(TypedAdd):
    """A registry view that records which plugin registered each component."""

    registry: Registry
    provider: str

    def add(self, kind: str, config_cls: Any, factory: Any = None, *a: Any, **kw: Any) -> Any:
        """``Registry.add`` with this plugin as the provider."""
        kw.setdefault("provider", self.provider)
        if isinstance(config_cls, str):  # the deprecated spelling: warn at the plugin's line
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                comp = self.registry.add(kind, config_cls, factory, *a, **kw)
            warnings.warn(
                f"{self.provider}: registry.add({kind!r}, {config_cls!r}, factory, config_cls) "
                f"is the old spelling; use registry.add_{kind}(config_cls, factory)",
                DeprecationWarning,
                stacklevel=2,
            )
            return comp
        return self.registry.add(kind, config_cls, factory, *a, **kw)

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
