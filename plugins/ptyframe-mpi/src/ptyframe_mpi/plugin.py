"""Register the MPI distribution modes and their Hydra presets with ptyframe."""

from __future__ import annotations

from ptyframe import hookimpl
from ptyframe_mpi.comm import MpiDataParallel, MpiDataParallelConfig
from ptyframe_mpi.hdf5_object import Hdf5Object, Hdf5ObjectConfig
from ptyframe_mpi.slabs import MpiDistributedObject, MpiDistributedObjectConfig


@hookimpl
def ptyframe_register(registry) -> None:
    """Register ``distribution=mpi_data_parallel|mpi_distributed_object|hdf5_object``.

    The object modes' constructors take ``run`` (``ptyframe.compose.build_distribution``
    passes the run config) to check that the engine can work on object windows.
    """
    registry.add_distribution(MpiDataParallelConfig, MpiDataParallel)
    registry.add_distribution(MpiDistributedObjectConfig, MpiDistributedObject)
    registry.add_distribution(Hdf5ObjectConfig, Hdf5Object)


@hookimpl
def ptyframe_config_searchpath() -> list[str]:
    """Offer the presets in ``conf/distribution`` (mpi_strided, hdf5_object_in_output)."""
    return ["pkg://ptyframe_mpi.conf"]


@hookimpl
def ptyframe_hydra_overrides(command: str, overrides: list[str]) -> list[str]:
    """Under ``mpiexec -n N`` (N > 1), give every rank rank 0's Hydra run/sweep directory.

    Hydra names the directory from each process's clock (``outputs/DATE/TIME``); ranks that
    start a second apart would each make one. Rank 0's timestamp is broadcast and set as
    ``hydra.run.dir`` and ``hydra.sweep.dir`` in Hydra's default layout, unless the user
    set them. Outside mpiexec nothing is imported and nothing is added.
    """
    if command != "reconstruct":  # `ptyframe simulate` runs in "." (no Hydra directory)
        return []
    from ptyframe_mpi.rundir import agreed_dirs

    return agreed_dirs(overrides)
