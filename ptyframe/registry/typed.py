"""Give plugins one registering method per kind: ``add_engine``, ``add_metric``, ...

The name is taken from the config class (``ptyframe.registry.component.component_name``);
``ptyframe.registry.tables`` implements ``add``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TypedDict, Unpack

from ptyframe.registry.component import Component
from ptyframe.registry.factory import Factory


class AddOptions(TypedDict, total=False):
    """The keywords of ``add`` after the factory."""

    #: Who registers the component (a plugin's entry point and distribution).
    provider: str
    #: Its one-line description (default: the config class's docstring's first line).
    doc: str | None


class TypedAdd(ABC):
    """One registering method per kind (the name is taken from the config class).

    ``registry.add_engine(EpieConfig, PieEngine)`` is ``registry.add("engine", EpieConfig,
    PieEngine)``; see ``ptyframe.registry`` for how each factory is called.
    """

    @abstractmethod
    def add(
        self, kind: str, config_cls: type, factory: Factory, **options: Unpack[AddOptions]
    ) -> Component:
        """Register ``factory`` under ``(kind, config_cls's name)``; return the component."""

    def add_dataset(
        self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]
    ) -> Component:
        """Add a dataset source: ``factory(config, context) -> PtychoDataset``."""
        return self.add("dataset", config_cls, factory, **kw)

    def add_reader(self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]) -> Component:
        """Add a file reader (``data.reader=<name>``)."""
        return self.add("reader", config_cls, factory, **kw)

    def add_simulation(
        self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]
    ) -> Component:
        """Add a simulator (``ptyframe simulate simulation=<name>``)."""
        return self.add("simulation", config_cls, factory, **kw)

    def add_phantom(
        self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]
    ) -> Component:
        """Add a phantom (simulated object)."""
        return self.add("phantom", config_cls, factory, **kw)

    def add_probe(self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]) -> Component:
        """Add a simulated probe."""
        return self.add("probe", config_cls, factory, **kw)

    def add_scan(self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]) -> Component:
        """Add a scan pattern."""
        return self.add("scan", config_cls, factory, **kw)

    def add_propagator(
        self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]
    ) -> Component:
        """Add a propagator (``physics.propagator=<name>``)."""
        return self.add("propagator", config_cls, factory, **kw)

    def add_forward_model(
        self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]
    ) -> Component:
        """Add a forward model (``physics=<name>``; the ``physics`` of ``engine=autodiff``)."""
        return self.add("forward_model", config_cls, factory, **kw)

    def add_loss(self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]) -> Component:
        """Add a data-mismatch term (``loss=<name>``)."""
        return self.add("loss", config_cls, factory, **kw)

    def add_regularizer(
        self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]
    ) -> Component:
        """Add a regularizer (``regularizers.<key>=<name>``)."""
        return self.add("regularizer", config_cls, factory, **kw)

    def add_optimizer(
        self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]
    ) -> Component:
        """Add an optimizer: ``factory(config) -> maker(params)``."""
        return self.add("optimizer", config_cls, factory, **kw)

    def add_engine(
        self, config_cls: type, engine_cls: Factory, **kw: Unpack[AddOptions]
    ) -> Component:
        """Add an engine: ``engine_cls(config, **collaborators)`` (``ptyframe.compose``).

        The collaborators are the constructor's parameters after the config, among
        ``physics``, ``loss``, ``regularizers``, ``prior`` and ``registry``.
        """
        return self.add("engine", config_cls, engine_cls, **kw)

    def add_prior_step(
        self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]
    ) -> Component:
        """Add a prior step: ``factory(config, denoiser)`` (an engine's ``prior``)."""
        return self.add("prior_step", config_cls, factory, **kw)

    def add_denoiser(
        self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]
    ) -> Component:
        """Add a denoiser (``denoiser=<name>``; the prior step's ``D``)."""
        return self.add("denoiser", config_cls, factory, **kw)

    def add_distribution(
        self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]
    ) -> Component:
        """Add a distribution (``distribution=<name>``; MPI modes)."""
        return self.add("distribution", config_cls, factory, **kw)

    def add_metric(self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]) -> Component:
        """Add a metric against the truth (``metrics.names=[<name>]``)."""
        return self.add("metric", config_cls, factory, **kw)

    def add_callback(
        self, config_cls: type, factory: Factory, **kw: Unpack[AddOptions]
    ) -> Component:
        """Add a run callback (``+callback@callbacks.<key>=<name>``); see ptyframe.callbacks."""
        return self.add("callback", config_cls, factory, **kw)
