"""Register the physics: propagators and forward models (``physics=<name>``)."""

from __future__ import annotations

from typing import Any

from ptyframe.hookspecs import hookimpl
from ptyframe.physics.farfield import FarFieldConfig, FarFieldPtychography
from ptyframe.physics.fullfield import FullFieldConfig, build_fullfield
from ptyframe.physics.holography import HolographyConfig, build_holography
from ptyframe.physics.multislice import MultisliceConfig, build_multislice
from ptyframe.physics.nearfield import NearFieldConfig, build_nearfield
from ptyframe.physics.propagators import (
    AngularSpectrumConfig,
    FraunhoferConfig,
    FresnelConfig,
    build_propagator,
)
from ptyframe.physics.tomography import TomographyConfig, build_tomography
from ptyframe.registry import ScopedRegistry


def build_farfield(config: FarFieldConfig, context: Any = None) -> FarFieldPtychography:
    """Build the far-field ptychography model."""
    return FarFieldPtychography(config)


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the propagators and every forward model."""
    registry.add("propagator", "fraunhofer", build_propagator, FraunhoferConfig)
    registry.add("propagator", "fresnel", build_propagator, FresnelConfig)
    registry.add("propagator", "angular_spectrum", build_propagator, AngularSpectrumConfig)
    registry.add("forward_model", "farfield", build_farfield, FarFieldConfig)
    registry.add("forward_model", "multislice", build_multislice, MultisliceConfig)
    registry.add("forward_model", "nearfield", build_nearfield, NearFieldConfig)
    registry.add("forward_model", "multidistance_holography", build_holography, HolographyConfig)
    registry.add("forward_model", "fullfield_cdi", build_fullfield, FullFieldConfig)
    registry.add("forward_model", "multislice_tomography", build_tomography, TomographyConfig)
