"""Register the single-process distribution (MPI modes live in ``plugins/ptyframe-mpi``)."""

from __future__ import annotations

from ptyframe.distributed.base import SingleConfig, SingleProcess
from ptyframe.hookspecs import hookimpl
from ptyframe.registry import ScopedRegistry


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register ``distribution=single``."""
    registry.add_distribution(SingleConfig, SingleProcess)
