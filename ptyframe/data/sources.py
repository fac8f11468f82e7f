"""Choose where the patterns of a run come from: a data-exchange file, or a fresh simulation.

Both are ``dataset`` components, so ``data=file data.path=f.h5`` and ``data=simulated`` are
Hydra choices and ``registry.build("dataset", cfg)`` returns a ``PtychoDataset``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ptyframe.data.dataset import PtychoDataset
from ptyframe.errors import ConfigError
from ptyframe.registry import BuildContext


@dataclass
class FileDataConfig:
    """A data-exchange HDF5 file (Adorym layout); see ``ptyframe.data.exchange``."""

    name: str = "file"
    path: str = "???"
    #: Keep every ``decimate``-th tile along the scan (1 = all); lowers the overlap.
    decimate: int = 1
    #: Use only the first ``max_tiles`` tiles after decimation (None = all).
    max_tiles: int | None = None
    #: Check every value for NaN/Inf on open (reads the whole file once).
    check_values: bool = True

    def __post_init__(self) -> None:
        if int(self.decimate) < 1:
            raise ConfigError(f"data.decimate = {self.decimate} must be >= 1")
        if self.max_tiles is not None and int(self.max_tiles) < 1:
            raise ConfigError(f"data.max_tiles = {self.max_tiles} must be >= 1 or null")


def build_file_dataset(config: FileDataConfig, context: BuildContext) -> PtychoDataset:
    """Open and validate the file; apply decimation and the tile limit."""
    if config.path in ("???", "", None):
        raise ConfigError(
            "no data file given. Pass one with `data.path=FILE.h5` "
            "(make a demo file with `ptyframe simulate out=demo.h5`)"
        )
    ds = PtychoDataset.open(config.path, validate_values=config.check_values)
    idx = np.arange(ds.n_tiles)[:: int(config.decimate)]
    if config.max_tiles is not None:
        idx = idx[: int(config.max_tiles)]
    if len(idx) < ds.n_tiles:
        ds = ds.select(idx)
    return ds


@dataclass
class SimulatedDataConfig:
    """A dataset simulated in memory at start-up (see ``ptyframe simulate`` for the options)."""

    name: str = "simulated"
    simulation: dict[str, Any] = field(default_factory=dict)
    phantom: dict[str, Any] = field(default_factory=lambda: {"name": "particles"})
    probe: dict[str, Any] = field(default_factory=lambda: {"name": "focused"})
    scan: dict[str, Any] = field(default_factory=lambda: {"name": "raster"})


def build_simulated_dataset(config: SimulatedDataConfig, context: BuildContext) -> PtychoDataset:
    """Simulate patterns with ground truth and wrap them as an in-memory dataset."""
    from ptyframe.simulation.simulate import simulate_dataset

    sim = simulate_dataset(
        phantom=dict(config.phantom),
        probe=dict(config.probe),
        scan=dict(config.scan),
        registry=context.registry,
        **dict(config.simulation),
    )
    return PtychoDataset(sim.geometry, patterns=sim.patterns, truth=sim.truth)
