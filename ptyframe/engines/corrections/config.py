"""Configure the corrections of the engine frame; every bad value is one ``ConfigError`` line.

Spelled in phase B as the engine's options (``docs/guide/real-experiments.md``)::

    engine.refine.positions=true        PositionConfig  (engine.positions.*)
    engine.probe_variation.modes=K      ProbeVariationConfig
    engine.flux.refine=true             FluxConfig

The checks that need the scan (one position, ``K`` larger than the patterns allow) run in
each correction's ``prepare``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ptyframe.errors import ConfigError


def _finite(owner: str, name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"{owner}.{name} = {value} is not a finite number; give a number")
    return v


def _start(owner: str, value: int) -> None:
    if int(value) != value or int(value) < 0:
        raise ConfigError(
            f"{owner}.start = {value} must be a whole sweep number >= 0 (the first sweep whose "
            "statistics are applied)"
        )


@dataclass
class PositionConfig:
    """Position correction (``ptyframe.engines.corrections.positions``).

    ``start``: first sweep whose statistics move the positions (the object must hold some
    structure first); ``max_step_px``: the largest move of one position in one sweep;
    ``gain``: factor on each sweep's least-squares shifts; ``momentum``: the friction of the
    heavy-ball accumulation of the shifts over sweeps (0: none); ``regularisation``: Tikhonov
    weight, relative to the scan's median curvature ``(a_yy + a_xx) / 2``, added to each
    position's 2x2 system (guards featureless positions); ``scan_map``: refine the global
    scan map (scale, rotation, shear, linear drift) from sweep ``scan_map_start`` on (before
    it, and always when off, the part of each sweep's shifts that such a map explains is
    removed: a free global scale drifts with the probe's curvature); ``affine_weight`` in
    [0, 1]: how far each sweep pulls the positions to the fitted map (0: free positions,
    1: positions on the map); ``coarse_start``, ``coarse_until``: with ``scan_map``, the
    sweeps ``[start, until)`` that end with the coarse map step of ``corrections.coarse`` (the
    scan map from the windows' deformation, object and positions moved together; ``until <=
    start``: none); ``coarse_gain``: the factor on its estimate.
    """

    start: int = 5
    max_step_px: float = 1.0
    gain: float = 1.0
    momentum: float = 0.9
    regularisation: float = 0.05
    scan_map: bool = False
    scan_map_start: int = 20
    affine_weight: float = 0.0
    coarse_start: int = 2
    coarse_until: int = 20
    coarse_gain: float = 2.0

    def __post_init__(self) -> None:
        o = "engine.positions"
        _start(o, self.start)
        for name in ("coarse_start", "coarse_until"):
            v = getattr(self, name)
            if int(v) != v or int(v) < 0:
                raise ConfigError(f"{o}.{name} = {v} must be a whole sweep number >= 0")
        cg = _finite(o, "coarse_gain", self.coarse_gain)
        if not 0 < cg <= 8:
            raise ConfigError(f"{o}.coarse_gain = {self.coarse_gain} must lie in (0, 8]")
        if int(self.scan_map_start) != self.scan_map_start or int(self.scan_map_start) < 0:
            raise ConfigError(
                f"{o}.scan_map_start = {self.scan_map_start} must be a whole sweep number >= 0"
            )
        step = _finite(o, "max_step_px", self.max_step_px)
        if not step > 0:
            raise ConfigError(
                f"{o}.max_step_px = {self.max_step_px} must be > 0 (the largest move of a "
                "position in one sweep, in pixels; e.g. 1)"
            )
        gain = _finite(o, "gain", self.gain)
        if not 0 < gain <= 50:
            raise ConfigError(f"{o}.gain = {self.gain} must lie in (0, 50]")
        mu = _finite(o, "momentum", self.momentum)
        if not 0 <= mu < 1:
            raise ConfigError(f"{o}.momentum = {self.momentum} must lie in [0, 1)")
        reg = _finite(o, "regularisation", self.regularisation)
        if reg < 0:
            raise ConfigError(f"{o}.regularisation = {self.regularisation} must be >= 0")
        w = _finite(o, "affine_weight", self.affine_weight)
        if not 0 <= w <= 1:
            raise ConfigError(f"{o}.affine_weight = {self.affine_weight} must lie in [0, 1]")


@dataclass
class ProbeVariationConfig:
    """Orthogonal probe relaxation (``ptyframe.engines.corrections.opr``).

    ``modes``: the number ``K`` of eigen-probes (0: off; 1: one probe with a complex weight
    per position); ``start``: first sweep whose weights are updated (before it only the
    eigen-probes learn, i.e. one shared probe); ``weight_step``: the factor on each visit's
    weight update; ``init_scale``: the norm of the initial higher eigen-probes relative to
    the probe's; ``weight_smoothing``: the degree of a polynomial in scan time fitted to
    each weight column after every sweep (0: none; a slowly drifting probe).
    """

    modes: int = 0
    start: int = 20
    weight_step: float = 1.0
    init_scale: float = 1e-3
    weight_smoothing: int = 0

    def __post_init__(self) -> None:
        o = "engine.probe_variation"
        if int(self.modes) != self.modes or int(self.modes) < 0:
            raise ConfigError(
                f"{o}.modes = {self.modes} must be a whole number >= 0 (0: off; e.g. 3)"
            )
        _start(o, self.start)
        s = _finite(o, "weight_step", self.weight_step)
        if not 0 < s <= 1:
            raise ConfigError(f"{o}.weight_step = {self.weight_step} must lie in (0, 1]")
        if int(self.weight_smoothing) != self.weight_smoothing or self.weight_smoothing < 0:
            raise ConfigError(
                f"{o}.weight_smoothing = {self.weight_smoothing} must be a whole number >= 0 "
                "(the degree of the weights' polynomial in scan time; 0: none)"
            )
        i = _finite(o, "init_scale", self.init_scale)
        if not 0 < i < 1:
            raise ConfigError(f"{o}.init_scale = {self.init_scale} must lie in (0, 1)")


@dataclass
class FluxConfig:
    """Per-pattern flux (``ptyframe.engines.corrections.flux``).

    ``refine``: on/off; ``start``: first sweep whose statistics move the scalars; ``step``:
    the fraction of the way to each sweep's least-squares value.
    """

    refine: bool = False
    start: int = 2
    step: float = 1.0

    def __post_init__(self) -> None:
        o = "engine.flux"
        _start(o, self.start)
        s = _finite(o, "step", self.step)
        if not 0 < s <= 1:
            raise ConfigError(f"{o}.step = {self.step} must lie in (0, 1]")


@dataclass
class RefineSwitches:
    """What a fast engine refines beyond object and probe: ``engine.refine.positions``."""

    positions: bool = False


def typed(value: Any, cls: type) -> Any:
    """Return ``value`` as a ``cls`` (a mapping from code or Hydra becomes one)."""
    return value if isinstance(value, cls) else cls(**dict(value))


def corrections_asked(cfg: Any) -> list[str]:
    """Return the corrections an engine config switches on, named as the ``Capabilities``
    fields: ``positions`` (``engine.refine.positions=true``), ``probe_variation``
    (``engine.probe_variation.modes >= 1``), ``flux`` (``engine.flux.refine=true``)."""
    out = []
    refine = getattr(cfg, "refine", None)
    if refine is not None and bool(getattr(refine, "positions", False)):
        out.append("positions")
    opr = getattr(cfg, "probe_variation", None)
    if opr is not None and int(opr.modes) > 0:
        out.append("probe_variation")
    flux = getattr(cfg, "flux", None)
    if flux is not None and bool(flux.refine):
        out.append("flux")
    return out
