"""Record one registered component, and find the name its config class gives it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ptyframe.errors import ConfigError
from ptyframe.registry.factory import Factory, wanted


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
        out: list[tuple[str, str, Any]] = []
        for f in dataclasses.fields(self.config_cls):
            if f.name == "name":
                continue
            default: Any
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = "???"
            tname = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            out.append((f.name, tname, default))
        return out


def component_name(config_cls: object, kind: str = "component", provider: str = "") -> str:
    """Return the name a config class gives its component: its ``name`` field's default.

    Raises ``ConfigError`` if ``config_cls`` is not a dataclass with such a default.
    """
    where = f" (from {provider})" if provider else ""
    if isinstance(config_cls, str):
        raise ConfigError(
            f"{kind} {config_cls!r}{where}: registering takes the config class, not a name; "
            f"use registry.add_{kind}(ConfigClass, factory) (the name is ConfigClass.name)"
        )
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
