"""Register the MPI distribution modes and their Hydra presets with ptyframe."""

from __future__ import annotations

from ptyframe import hookimpl
from ptyframe_mpi.comm import MpiDataParallelConfig, build_mpi_data_parallel
from ptyframe_mpi.hdf5_object import Hdf5ObjectConfig, build_hdf5_object
from ptyframe_mpi.slabs import MpiDistributedObjectConfig, build_mpi_distributed_object


@hookimpl
def ptyframe_register(registry) -> None:  # noqa: ANN001
    """Register ``distribution=mpi_data_parallel|mpi_distributed_object|hdf5_object``."""
    registry.add(
        "distribution", "mpi_data_parallel", build_mpi_data_parallel, MpiDataParallelConfig
    )
    registry.add(
        "distribution",
        "mpi_distributed_object",
        build_mpi_distributed_object,
        MpiDistributedObjectConfig,
    )
    registry.add("distribution", "hdf5_object", build_hdf5_object, Hdf5ObjectConfig)


@hookimpl
def ptyframe_config_searchpath() -> list[str]:
    """Offer the presets in ``conf/distribution`` (mpi_strided, hdf5_object_in_output)."""
    return ["pkg://ptyframe_mpi.conf"]
