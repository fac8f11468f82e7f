"""Register the dataset sources (``data=file``, ``data=simulated``) and the file readers."""

from __future__ import annotations

from ptyframe.data.read_cxi import CxiReader, CxiReaderConfig, NxcxiReader, NxcxiReaderConfig
from ptyframe.data.read_exchange import ExchangeReader, ExchangeReaderConfig
from ptyframe.data.read_ptylab import PtylabReader, PtylabReaderConfig
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
    """Register the file and simulated dataset sources and the built-in readers."""
    registry.add_dataset(FileDataConfig, build_file_dataset)
    registry.add_dataset(SimulatedDataConfig, build_simulated_dataset)
    registry.add_reader(ExchangeReaderConfig, ExchangeReader)
    registry.add_reader(CxiReaderConfig, CxiReader)
    registry.add_reader(NxcxiReaderConfig, NxcxiReader)
    registry.add_reader(PtylabReaderConfig, PtylabReader)
