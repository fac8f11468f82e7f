"""Register ``distribution=mpi_data_parallel`` with ptyframe."""

from __future__ import annotations

from ptyframe import hookimpl
from ptyframe_mpi.comm import MpiDataParallelConfig, build_mpi_data_parallel


@hookimpl
def ptyframe_register(registry) -> None:  # noqa: ANN001
    """Register the MPI distribution modes."""
    registry.add(
        "distribution", "mpi_data_parallel", build_mpi_data_parallel, MpiDataParallelConfig
    )
