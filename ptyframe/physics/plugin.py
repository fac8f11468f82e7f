"""Register the physics: propagators and forward models (``physics=<name>``)."""

from __future__ import annotations

from ptyframe.hookspecs import hookimpl
from ptyframe.physics.farfield import FarFieldConfig
from ptyframe.physics.fullfield import FullFieldConfig, FullFieldModel
from ptyframe.physics.holography import HolographyConfig, HolographyModel
from ptyframe.physics.multislice import MultisliceConfig, PtychoModel, farfield_model
from ptyframe.physics.nearfield import NearFieldConfig
from ptyframe.physics.propagators import (
    AngularSpectrumConfig,
    FraunhoferConfig,
    FresnelConfig,
    build_propagator,
)
from ptyframe.physics.tomography import TomographyConfig, TomographyModel
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the propagators and every forward model (each a ``ForwardModel``)."""
    registry.add_propagator(FraunhoferConfig, build_propagator)
    registry.add_propagator(FresnelConfig, build_propagator)
    registry.add_propagator(AngularSpectrumConfig, build_propagator)
    registry.add_forward_model(FarFieldConfig, farfield_model)  # one slice, far field
    registry.add_forward_model(MultisliceConfig, PtychoModel)
    registry.add_forward_model(NearFieldConfig, PtychoModel)  # one slice, near-field detector
    registry.add_forward_model(HolographyConfig, HolographyModel)
    registry.add_forward_model(FullFieldConfig, FullFieldModel)
    registry.add_forward_model(TomographyConfig, TomographyModel)
