"""Compare an estimate with the dataset's ground truth: the configured metrics, and the FRC."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ptyframe.metrics.illumination import truth_reference

if TYPE_CHECKING:
    from ptyframe.data.dataset import PtychoDataset
    from ptyframe.metrics.frc import FrcResult
    from ptyframe.metrics.plugin import Metric
    from ptyframe.registry import BuildContext, Registry


class TruthMetrics:
    """Compute the configured metric components against the dataset's ground truth.

    ``enabled`` is False when the dataset has no ``/truth`` or no metric is named. The first
    metric's ``prepare`` (the FRC's alignment to the truth) is done once and shared.
    """

    def __init__(
        self, names: list[str], registry: Registry, context: BuildContext, dataset: PtychoDataset
    ) -> None:
        reference = truth_reference(dataset)
        self.enabled = reference is not None and bool(names)
        if reference is None or not self.enabled:
            return
        self.truth, self.illumination = reference
        self.pixel_size_m = dataset.geometry.pixel_size_m
        self.metrics: list[Metric] = [registry.build("metric", n, context) for n in names]

    def __call__(self, estimate: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        if not self.enabled or estimate.shape != self.truth.shape:
            return out
        from ptyframe.metrics.plugin import TruthMetric

        first, prepared = self.metrics[0], None
        if isinstance(first, TruthMetric):  # align once, share with every metric
            prepared = first.prepare(estimate, self.truth, self.illumination)
        for metric in self.metrics:
            kw = {"prepared": prepared} if prepared is not None else {}
            out.update(metric(estimate, self.truth, self.illumination, self.pixel_size_m, **kw))
        return out

    def final_frc(self, estimate: np.ndarray) -> FrcResult | None:
        """Return the ``FrcResult`` of ``estimate`` against the truth, or None (no truth/area)."""
        if not self.enabled or estimate.shape != self.truth.shape:
            return None
        from ptyframe.errors import PtyframeError

        try:
            from ptyframe.metrics.frc import frc_against_truth

            res, _ = frc_against_truth(estimate, self.truth, self.illumination, self.pixel_size_m)
        except (ImportError, ValueError, PtyframeError):  # no metrics package, or no lit area
            return None
        return res
