"""Simulate the patterns of a run in memory at start-up: the ``data=simulated`` dataset source.

A ``dataset`` component like ``data=file`` (``ptyframe.data.sources``), so
``registry.build("dataset", {"name": "simulated", ...})`` returns a ``PtychoDataset`` with
ground truth; its options are those of ``ptyframe simulate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.holdout import check_fraction, split_validation
from ptyframe.registry import BuildContext
from ptyframe.simulation.simulate import simulate_dataset


@dataclass
class SimulatedDataConfig:
    """A dataset simulated in memory at start-up (see ``ptyframe simulate`` for the options)."""

    name: str = "simulated"
    simulation: dict[str, Any] = field(default_factory=dict)
    phantom: dict[str, Any] = field(default_factory=lambda: {"name": "particles"})
    probe: dict[str, Any] = field(default_factory=lambda: {"name": "focused"})
    scan: dict[str, Any] = field(default_factory=lambda: {"name": "raster"})
    #: As ``FileDataConfig.validation_fraction``.
    validation_fraction: float = 0.0

    def __post_init__(self) -> None:
        check_fraction(self.validation_fraction)


def build_simulated_dataset(config: SimulatedDataConfig, context: BuildContext) -> PtychoDataset:
    """Simulate patterns with ground truth and wrap them as an in-memory dataset."""
    sim = simulate_dataset(
        phantom=dict(config.phantom),
        probe=dict(config.probe),
        scan=dict(config.scan),
        registry=context.registry,
        **dict(config.simulation),
    )
    ds = PtychoDataset(sim.geometry, patterns=sim.patterns, truth=sim.truth)
    return split_validation(ds, float(config.validation_fraction), int(context.seed))
