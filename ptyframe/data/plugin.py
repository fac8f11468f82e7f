"""Register the dataset sources: ``data=file`` and ``data=simulated``."""

from __future__ import annotations

from ptyframe.data.sources import (
    FileDataConfig,
    SimulatedDataConfig,
    build_file_dataset,
    build_simulated_dataset,
)
from ptyframe.hookspecs import hookimpl
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the file and simulated dataset sources."""
    registry.add("dataset", "file", build_file_dataset, FileDataConfig)
    registry.add("dataset", "simulated", build_simulated_dataset, SimulatedDataConfig)
