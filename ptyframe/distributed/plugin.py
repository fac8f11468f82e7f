"""Register the single-process distribution (MPI modes live in ``plugins/ptyframe-mpi``)."""

from __future__ import annotations

from ptyframe.distributed.base import SingleConfig, SingleProcess
from ptyframe.hookspecs import hookimpl
from ptyframe.registry import BuildContext, ScopedRegistry


def build_single(config: SingleConfig, context: BuildContext) -> SingleProcess:
    """Build the single-process distribution (no communication)."""
    return SingleProcess(config)


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register ``distribution=single``."""
    registry.add("distribution", "single", build_single, SingleConfig)
