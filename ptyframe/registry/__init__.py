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

The registry also feeds Hydra's ConfigStore (``Registry.store_configs``): each component's
config class becomes the option ``name`` of the config group ``kind``, so ``engine=epie``
selects it and ``engine.alpha=0.3`` is type-checked against ``EpieConfig``.

One module per job:

* ``kinds``: the kinds, the Hydra group of each and how each is chosen on the command line;
* ``component``: the ``Component`` record and the name a config class gives it;
* ``factory``: ``BuildContext`` and how a factory is called with its collaborators;
* ``configs``: a name, mapping or ``DictConfig`` turned into the typed config dataclass;
* ``typed``: the typed registering methods plugins call (``add_engine``, ``add_metric``, ...);
* ``tables``: ``Registry`` (the tables: add, look up, build, store in Hydra) and the
  ``ScopedRegistry`` view a plugin registers through.
"""

from __future__ import annotations

from ptyframe.registry.component import Component, component_name
from ptyframe.registry.configs import as_config
from ptyframe.registry.factory import Factory, call_factory, wanted
from ptyframe.registry.kinds import CHOOSE, KINDS, choose_hint
from ptyframe.registry.tables import BuildContext, Registry, ScopedRegistry
from ptyframe.registry.typed import TypedAdd

__all__ = [
    "CHOOSE",
    "KINDS",
    "BuildContext",
    "Component",
    "Factory",
    "Registry",
    "ScopedRegistry",
    "TypedAdd",
    "as_config",
    "call_factory",
    "choose_hint",
    "component_name",
    "wanted",
]
