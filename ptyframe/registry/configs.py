"""Turn what names a component (a name, a dataclass, a ``DictConfig``, a mapping) into its
typed config dataclass.

A mapping goes through OmegaConf so nested dataclass fields are built and type-checked too;
a field the config class lacks is a ``ConfigError`` with the nearest field names, and an
error raised by the config's ``__post_init__`` comes out as itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ptyframe.errors import ConfigError, find_ptyframe_error
from ptyframe.registry.component import Component

#: ``lookup(kind, name)``: the registered component (``Registry.get``).
Lookup = Callable[[str, str], Component]


def as_config(kind: str, cfg: Any, lookup: Lookup) -> Any:
    """Return ``cfg`` (name, dataclass, DictConfig or mapping) as its config dataclass."""
    if isinstance(cfg, str):
        return lookup(kind, cfg).config_cls()
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        comp = lookup(kind, getattr(cfg, "name", ""))
        if not isinstance(cfg, comp.config_cls):
            raise ConfigError(
                f"{kind} {comp.name!r} expects {comp.config_cls.__name__}, got {type(cfg).__name__}"
            )
        return cfg
    mapping = _to_mapping(cfg)
    name = mapping.get("name")
    if not name:
        raise ConfigError(f"{kind} config has no `name` field: {dict(mapping)!r}")
    comp = lookup(kind, name)
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
    except Exception as exc:  # OmegaConf wraps errors from __post_init__
        inner = find_ptyframe_error(exc)
        if inner is not None:
            raise inner from None
        raise ConfigError(f"{kind} {name!r}: {exc}".split("\n")[0]) from None


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
            except Exception:  # a typed field keeps its default
                pass
        else:
            _clear_renamed(current, value)


def _to_mapping(cfg: Any) -> dict[str, Any]:
    """Return ``cfg`` (a ``DictConfig`` or a mapping) as a plain dict."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        container = OmegaConf.to_container(cfg, resolve=True)
        if isinstance(container, dict):
            return {str(k): v for k, v in container.items()}
    if isinstance(cfg, Mapping):
        return dict(cfg)
    raise ConfigError(f"cannot read a component config from {type(cfg).__name__}")
