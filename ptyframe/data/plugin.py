"""Register the file dataset source (``data=file``) and the file readers.

``data=simulated`` is registered by ``ptyframe.simulation.plugin``.
"""

from __future__ import annotations

from ptyframe.data.read_cxi import CxiReader, CxiReaderConfig, NxcxiReader, NxcxiReaderConfig
from ptyframe.data.read_exchange import ExchangeReader, ExchangeReaderConfig
from ptyframe.data.read_ptylab import PtylabReader, PtylabReaderConfig
from ptyframe.data.sources import FileDataConfig, build_file_dataset
from ptyframe.hookspecs import hookimpl
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the file dataset source and the built-in readers."""
    registry.add_dataset(FileDataConfig, build_file_dataset)
    registry.add_reader(ExchangeReaderConfig, ExchangeReader)
    registry.add_reader(CxiReaderConfig, CxiReader)
    registry.add_reader(NxcxiReaderConfig, NxcxiReader)
    registry.add_reader(PtylabReaderConfig, PtylabReader)
