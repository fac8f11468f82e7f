"""Register the dataset sources (``data=file``, ``data=simulated``) and the file readers."""

from __future__ import annotations

from ptyframe.data.read_cxi import (
    CxiReaderConfig,
    NxcxiReaderConfig,
    build_cxi_reader,
    build_nxcxi_reader,
)
from ptyframe.data.read_exchange import ExchangeReaderConfig, build_exchange_reader
from ptyframe.data.read_ptylab import PtylabReaderConfig, build_ptylab_reader
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
    registry.add("dataset", "file", build_file_dataset, FileDataConfig)
    registry.add("dataset", "simulated", build_simulated_dataset, SimulatedDataConfig)
    registry.add("reader", "exchange", build_exchange_reader, ExchangeReaderConfig)
    registry.add("reader", "cxi", build_cxi_reader, CxiReaderConfig)
    registry.add("reader", "nxcxi", build_nxcxi_reader, NxcxiReaderConfig)
    registry.add("reader", "ptylab", build_ptylab_reader, PtylabReaderConfig)
