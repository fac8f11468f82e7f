"""Register the metrics against a ground truth as components of kind ``"metric"``.

Each factory returns a callable object::

    metric(estimate, truth, illumination, pixel_size_m, prepared=None) -> dict[str, float]

with complex ``[H, W]`` ``estimate`` and ``truth`` on one object frame, ``illumination`` the
total photons per object pixel (or ``None``: everything counts as lit) and the pixel size in
metres. Every metric compares the pair after ``prepare_pair`` (sub-pixel alignment by
phase-only correlation, complex scale/phase correction, then the windowed deviations
``W (x - <x>_W)`` of both images with one smooth window ``W`` over the region lit above
``illumination_threshold`` of the maximum; no vacuum substitution), so the three agree on
what they compare and an estimate without information scores as such (FRC 0, NRMSE 1).
A caller that evaluates several metrics on one pair may compute ``prepare_pair`` once and
pass it as ``prepared=`` to skip the repeated alignment.

Result keys
    ``frc``:   ``frc_quarter_nyquist``, ``frc_half_nyquist``, ``frc_3q_nyquist`` (band values
               ``FrcResult.band``: the ring FRCs averaged over 1/4 Nyquist wide bands
               centred there; 1/2 and 3/4 are the PINE paper's figures 5 and 6b),
               ``resolution_half_bit_m``, ``resolution_one_seventh_m`` (NaN when the FRC
               stays above the threshold up to Nyquist).
    ``nrmse``: ``nrmse`` of the windowed deviations (1 for a constant estimate).
    ``ssim``:  ``ssim_amplitude``, ``ssim_phase`` (``ptyframe.metrics.image.ssim_components``:
               windowed amplitude/phase deviations, map averaged with the window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ptyframe.errors import ConfigError
from ptyframe.hookspecs import hookimpl
from ptyframe.metrics.align import PreparedPair, prepare_pair
from ptyframe.metrics.frc import frc_of_pair
from ptyframe.metrics.image import nrmse, ssim_components
from ptyframe.registry import ScopedRegistry


def _check_common(cfg: Any) -> None:
    if int(cfg.upsample) < 1 or int(cfg.upsample) > 1000:
        raise ConfigError(
            f"metric {cfg.name}: upsample = {cfg.upsample} must lie in [1, 1000] "
            "(sub-pixel alignment step is 1/upsample pixel; 20 is usual)"
        )
    thr = float(cfg.illumination_threshold)
    if not 0.0 <= thr < 1.0:
        raise ConfigError(
            f"metric {cfg.name}: illumination_threshold = {cfg.illumination_threshold} must lie "
            "in [0, 1) (fraction of the maximum total photons; the PINE paper uses 0.01)"
        )
    taper = getattr(cfg, "taper_px", None)
    if taper is not None and not float(taper) > 0.0:
        raise ConfigError(
            f"metric {cfg.name}: taper_px = {taper} must be > 0 (width of the comparison "
            "window's edge, pixels), or null for the default (24 px)"
        )


@dataclass
class FrcMetricConfig:
    """FRC against the truth (PINE paper eq. 23 with its preprocessing)."""

    name: str = "frc"
    #: Sub-pixel alignment step: ``1 / upsample`` pixel.
    upsample: int = 20
    #: The compared region: lit by at least this share of the maximum
    #: total photons (the PINE paper: 0.01).
    illumination_threshold: float = 0.01
    #: Width of the comparison window's smooth edge; null: the default.
    taper_px: float | None = None

    def __post_init__(self) -> None:
        _check_common(self)


@dataclass
class NrmseMetricConfig:
    """NRMSE against the truth over the lit region, optimal complex scale."""

    name: str = "nrmse"
    #: Sub-pixel alignment step: ``1 / upsample`` pixel.
    upsample: int = 20
    #: The compared region: lit by at least this share of the maximum
    #: total photons (the PINE paper: 0.01).
    illumination_threshold: float = 0.01
    #: Width of the comparison window's smooth edge; null: the default.
    taper_px: float | None = None

    def __post_init__(self) -> None:
        _check_common(self)


@dataclass
class SsimMetricConfig:
    """SSIM of amplitude and phase against the truth over the lit region."""

    name: str = "ssim"
    #: Sub-pixel alignment step: ``1 / upsample`` pixel.
    upsample: int = 20
    #: The compared region: lit by at least this share of the maximum
    #: total photons (the PINE paper: 0.01).
    illumination_threshold: float = 0.01
    #: Width of the comparison window's smooth edge; null: the default.
    taper_px: float | None = None

    def __post_init__(self) -> None:
        _check_common(self)


class Metric(Protocol):
    """What a registered metric is: a callable with this signature (module docstring)."""

    def __call__(
        self,
        estimate: np.ndarray,
        truth: np.ndarray,
        illumination: np.ndarray | None,
        pixel_size_m: float,
        prepared: PreparedPair | None = None,
    ) -> dict[str, float]: ...


class TruthMetric:
    """Base class: prepare the pair, then compute ``_compute(pair, pixel_size_m)``."""

    keys: tuple[str, ...] = ()

    def __init__(self, config: Any) -> None:
        self.config = config

    def prepare(
        self, estimate: np.ndarray, truth: np.ndarray, illumination: np.ndarray | None
    ) -> PreparedPair:
        """Return ``prepare_pair`` with this metric's threshold and upsampling."""
        return prepare_pair(
            estimate,
            truth,
            illumination,
            threshold=float(self.config.illumination_threshold),
            upsample=int(self.config.upsample),
            taper_px=getattr(self.config, "taper_px", None),
        )

    def __call__(
        self,
        estimate: np.ndarray,
        truth: np.ndarray,
        illumination: np.ndarray | None,
        pixel_size_m: float,
        prepared: PreparedPair | None = None,
    ) -> dict[str, float]:
        """Return this metric's values for ``estimate`` against ``truth``."""
        pair = prepared if prepared is not None else self.prepare(estimate, truth, illumination)
        return self._compute(pair, float(pixel_size_m))

    def _compute(self, pair: PreparedPair, pixel_size_m: float) -> dict[str, float]:
        raise NotImplementedError


class FrcMetric(TruthMetric):
    """FRC at 1/2 and 3/4 of Nyquist and the half-bit / 1/7 resolutions."""

    keys = (
        "frc_quarter_nyquist",
        "frc_half_nyquist",
        "frc_3q_nyquist",
        "resolution_half_bit_m",
        "resolution_one_seventh_m",
    )

    def _compute(self, pair: PreparedPair, pixel_size_m: float) -> dict[str, float]:
        res = frc_of_pair(pair, pixel_size_m)
        half_bit = res.resolution_m("half_bit")
        seventh = res.resolution_m("1/7")
        return {
            "frc_quarter_nyquist": res.band(0.25),
            "frc_half_nyquist": res.band(0.5),
            "frc_3q_nyquist": res.band(0.75),
            "resolution_half_bit_m": math.nan if half_bit is None else half_bit,
            "resolution_one_seventh_m": math.nan if seventh is None else seventh,
        }


class NrmseMetric(TruthMetric):
    """NRMSE of the windowed deviations (``ptyframe.metrics.image``)."""

    keys = ("nrmse",)

    def _compute(self, pair: PreparedPair, pixel_size_m: float) -> dict[str, float]:
        return {"nrmse": nrmse(pair.estimate, pair.truth)}


class SsimMetric(TruthMetric):
    """SSIM of the windowed amplitude and phase deviations (``ssim_components``)."""

    keys = ("ssim_amplitude", "ssim_phase")

    def _compute(self, pair: PreparedPair, pixel_size_m: float) -> dict[str, float]:
        if pair.aligned is None or pair.truth_image is None or pair.window is None:
            raise ValueError(
                "ssim compares the aligned images of a PreparedPair from prepare_pair; this "
                "pair has none"
            )
        return ssim_components(pair.aligned, pair.truth_image, pair.window, pair.mask)


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the ``frc``, ``nrmse`` and ``ssim`` metrics."""
    registry.add_metric(FrcMetricConfig, FrcMetric)
    registry.add_metric(NrmseMetricConfig, NrmseMetric)
    registry.add_metric(SsimMetricConfig, SsimMetric)
