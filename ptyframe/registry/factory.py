"""Call a component's factory with its config and the collaborators its parameters name.

``factory(config, **wanted)``: of the factory's parameters after the config, those named like
a collaborator the builder offers get it; ``context`` (a ``BuildContext``) goes to a parameter
of that name, or else to the first parameter after the config when it is required and names
no offered collaborator (``build(config, ctx)`` functions).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ptyframe.errors import ConfigError

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
