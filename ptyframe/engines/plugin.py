"""Register the PIE family (ePIE, rPIE, mPIE, PINE, minibatch PIE), LSQML, the denoising step."""

from __future__ import annotations

from ptyframe.engines.lsqml import LsqmlConfig, build_lsqml
from ptyframe.engines.minibatch_pie import MinibatchPieConfig, build_minibatch_pie
from ptyframe.engines.mpie import MpieConfig, build_mpie
from ptyframe.engines.pie import EpieConfig, RpieConfig, build_epie, build_rpie
from ptyframe.engines.pine import PineConfig, build_pine
from ptyframe.engines.prior import DenoiseStepConfig, build_denoise_step
from ptyframe.hookspecs import hookimpl
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the PIE family, ``minibatch_pie``, ``lsqml`` and the denoising step."""
    registry.add("engine", "epie", build_epie, EpieConfig)
    registry.add("engine", "rpie", build_rpie, RpieConfig)
    registry.add("engine", "mpie", build_mpie, MpieConfig)
    registry.add("engine", "minibatch_pie", build_minibatch_pie, MinibatchPieConfig)
    registry.add("engine", "lsqml", build_lsqml, LsqmlConfig)
    registry.add("engine", "pine", build_pine, PineConfig)
    registry.add("prior_step", "denoise", build_denoise_step, DenoiseStepConfig)
