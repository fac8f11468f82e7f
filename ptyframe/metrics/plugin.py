"""Register the metrics against a ground truth as components of kind ``"metric"``.

Each factory returns a callable object::

    metric(estimate, truth, illumination, pixel_size_m, prepared=None) -> dict[str, float]

with complex ``[H, W]`` ``estimate`` and ``truth`` on one object frame, ``illumination`` the
total photons per object pixel (or ``None``: everything counts as lit) and the pixel size in
metres. Every metric compares the pair after ``prepare_pair`` (sub-pixel alignment by
phase-only correlation, complex scale/phase correction, vacuum where the illumination is
below ``illumination_threshold`` of its maximum), so the three agree on what they compare.
A caller that evaluates several metrics on one pair may compute ``prepare_pair`` once and
pass it as ``prepared=`` to skip the repeated alignment.

Result keys
    ``frc``:   ``frc_half_nyquist``, ``frc_3q_nyquist`` (the PINE paper's figures 5 and 6b),
               ``resolution_half_bit_m``, ``resolution_one_seventh_m`` (NaN when the FRC
               stays above the threshold up to Nyquist).
    ``nrmse``: ``nrmse`` over the lit mask.
    ``ssim``:  ``ssim_amplitude``, ``ssim_phase`` (mean SSIM map over the lit mask; data
               range = the truth's peak-to-peak over the mask).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ptyframe.errors import ConfigError
from ptyframe.hookspecs import hookimpl
from ptyframe.metrics.align import PreparedPair, prepare_pair
from ptyframe.metrics.frc import frc
from ptyframe.metrics.image import nrmse, ssim


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


@dataclass
class FrcMetricConfig:
    """FRC against the truth (PINE paper eq. 23 with its preprocessing)."""

    name: str = "frc"
    upsample: int = 20
    illumination_threshold: float = 0.01

    def __post_init__(self) -> None:
        _check_common(self)


@dataclass
class NrmseMetricConfig:
    """NRMSE against the truth over the lit region, optimal complex scale."""

    name: str = "nrmse"
    upsample: int = 20
    illumination_threshold: float = 0.01

    def __post_init__(self) -> None:
        _check_common(self)


@dataclass
class SsimMetricConfig:
    """SSIM of amplitude and phase against the truth over the lit region."""

    name: str = "ssim"
    upsample: int = 20
    illumination_threshold: float = 0.01

    def __post_init__(self) -> None:
        _check_common(self)


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
        "frc_half_nyquist",
        "frc_3q_nyquist",
        "resolution_half_bit_m",
        "resolution_one_seventh_m",
    )

    def _compute(self, pair: PreparedPair, pixel_size_m: float) -> dict[str, float]:
        res = frc(pair.estimate, pair.truth, pixel_size_m)
        half_bit = res.resolution_m("half_bit")
        seventh = res.resolution_m("1/7")
        return {
            "frc_half_nyquist": res.at(0.5),
            "frc_3q_nyquist": res.at(0.75),
            "resolution_half_bit_m": math.nan if half_bit is None else half_bit,
            "resolution_one_seventh_m": math.nan if seventh is None else seventh,
        }


class NrmseMetric(TruthMetric):
    """NRMSE over the lit mask."""

    keys = ("nrmse",)

    def _compute(self, pair: PreparedPair, pixel_size_m: float) -> dict[str, float]:
        return {"nrmse": nrmse(pair.estimate, pair.truth, pair.mask)}


class SsimMetric(TruthMetric):
    """SSIM of amplitude and of phase over the lit mask."""

    keys = ("ssim_amplitude", "ssim_phase")

    def _compute(self, pair: PreparedPair, pixel_size_m: float) -> dict[str, float]:
        out = {}
        for key, part in (("ssim_amplitude", np.abs), ("ssim_phase", np.angle)):
            est, tru = part(pair.estimate), part(pair.truth)
            rng = float(np.ptp(tru[pair.mask])) or 1.0
            out[key] = ssim(est, tru, data_range=rng, mask=pair.mask)
        return out


def build_frc(config: FrcMetricConfig, context: Any) -> FrcMetric:
    """Build the FRC metric (PINE paper eq. 23 with its preprocessing)."""
    return FrcMetric(config)


def build_nrmse(config: NrmseMetricConfig, context: Any) -> NrmseMetric:
    """Build the NRMSE metric (optimal complex scale, lit region)."""
    return NrmseMetric(config)


def build_ssim(config: SsimMetricConfig, context: Any) -> SsimMetric:
    """Build the SSIM metric (Wang et al. 2004) on amplitude and phase."""
    return SsimMetric(config)


@hookimpl
def ptyframe_register(registry) -> None:  # noqa: ANN001
    """Register the ``frc``, ``nrmse`` and ``ssim`` metrics."""
    registry.add("metric", "frc", build_frc, FrcMetricConfig)
    registry.add("metric", "nrmse", build_nrmse, NrmseMetricConfig)
    registry.add("metric", "ssim", build_ssim, SsimMetricConfig)
