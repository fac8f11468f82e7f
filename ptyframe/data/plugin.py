"""Register the file dataset source (``data=file``) and the file readers.

``data=simulated`` is registered by ``ptyframe.simulation.plugin``.
"""

from __future__ import annotations

from ptyframe.data.read_cxi import (
    CxiReaderConfig,
    NxcxiReaderConfig,
    build_cxi_reader,
    build_nxcxi_reader,
)
from ptyframe.data.read_exchange import ExchangeReaderConfig, build_exchange_reader
from ptyframe.data.read_ptylab import PtylabReaderConfig, build_ptylab_reader
from ptyframe.data.sources import FileDataConfig, build_file_dataset
from ptyframe.hookspecs import hookimpl
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the file dataset source and the built-in readers."""
    registry.add("dataset", "file", build_file_dataset, FileDataConfig)
    registry.add("reader", "exchange", build_exchange_reader, ExchangeReaderConfig)
    registry.add("reader", "cxi", build_cxi_reader, CxiReaderConfig)
    registry.add("reader", "nxcxi", build_nxcxi_reader, NxcxiReaderConfig)
    registry.add("reader", "ptylab", build_ptylab_reader, PtylabReaderConfig)
