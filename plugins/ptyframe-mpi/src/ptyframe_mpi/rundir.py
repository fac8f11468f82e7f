"""One Hydra run directory for all MPI ranks (see ``plugin.ptyframe_hydra_overrides``)."""

from __future__ import annotations

import os
import time

#: Launcher variables that hold the world size (MPICH/Hydra, Open MPI, Intel MPI).
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


def launched_size() -> int:
    """Return the world size the MPI launcher announced in the environment (1 if none)."""
    for key in SIZE_VARIABLES:
        value = os.environ.get(key)
        if value and value.isdigit():
            return int(value)
    return 1


def agreed_dirs(overrides: list[str], stamp: tuple[str, str] | None = None) -> list[str]:
    """Return ``hydra.run.dir``/``hydra.sweep.dir`` overrides from rank 0's clock.

    ``stamp`` (``("YYYY-mm-dd", "HH-MM-SS")``) replaces the broadcast in tests. Keys the user
    set are left alone; with one process nothing is returned (Hydra's own default applies).
    """
    if stamp is None:
        if launched_size() <= 1:
            return []
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        mine = (time.strftime("%Y-%m-%d"), time.strftime("%H-%M-%S"))
        stamp = comm.bcast(mine if comm.Get_rank() == 0 else None, root=0)
    day, clock = stamp
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o}
    out = []
    if "hydra.run.dir" not in given and "output.dir" not in given:
        out.append(f"hydra.run.dir=outputs/{day}/{clock}")
    if "hydra.sweep.dir" not in given:
        out.append(f"hydra.sweep.dir=multirun/{day}/{clock}")
    return out
