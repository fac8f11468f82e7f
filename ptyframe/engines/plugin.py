"""Register the PIE family (ePIE, rPIE, mPIE, PINE, minibatch PIE), LSQML, the denoising step."""

from __future__ import annotations

from ptyframe.engines.lsqml import LsqmlConfig, LsqmlEngine
from ptyframe.engines.minibatch_pie import MinibatchPieConfig, MinibatchPieEngine
from ptyframe.engines.mpie import MpieConfig, MpieEngine
from ptyframe.engines.pie import EpieConfig, PieEngine, RpieConfig
from ptyframe.engines.pine import PineConfig
from ptyframe.engines.prior import DenoiseStep, DenoiseStepConfig
from ptyframe.hookspecs import hookimpl
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the PIE family, ``minibatch_pie``, ``lsqml`` and the denoising step."""
    registry.add_engine(EpieConfig, PieEngine)
    registry.add_engine(RpieConfig, PieEngine)
    registry.add_engine(PineConfig, PieEngine)  # PINE: the PIE engine given a prior
    registry.add_engine(MpieConfig, MpieEngine)
    registry.add_engine(MinibatchPieConfig, MinibatchPieEngine)
    registry.add_engine(LsqmlConfig, LsqmlEngine)
    registry.add_prior_step(DenoiseStepConfig, DenoiseStep)
