"""Test settings of ptyframe-mpi, and the abort hook of the MPI tier.

The MPI tier runs this directory inside ``mpiexec``::

    timeout 600 mpiexec -n 2 python -m pytest -m mpi plugins/ptyframe-mpi/tests -p no:cacheprovider

A test that fails on one rank while the other waits in a collective would hang the job:
``pytest_runtest_logreport`` prints the failure and calls ``MPI.COMM_WORLD.Abort(1)`` instead,
so the job ends within a second with a non-zero status (MPICH and Open MPI). Outside mpiexec
(world size 1) the hook does nothing and mpi4py is not imported.
"""

from __future__ import annotations

import sys
import time

import pytest
import torch


def world_size() -> int:
    """Return the MPI world size from the launcher's environment (1 outside mpiexec)."""
    from ptyframe_mpi.rundir import launched_size

    return launched_size()


_CONFIG: list[pytest.Config] = []


def pytest_configure(config: pytest.Config) -> None:
    """Keep the config: the abort hook needs its capture manager."""
    _CONFIG[:] = [config]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Abort every rank when a test fails on this one (no hang in a collective)."""
    if not report.failed or world_size() < 2:
        return
    from mpi4py import MPI

    capman = _CONFIG[0].pluginmanager.getplugin("capturemanager") if _CONFIG else None
    if capman is not None:
        capman.suspend_global_capture(in_=True)  # let the message reach the real stderr

    rank = MPI.COMM_WORLD.Get_rank()
    print(
        f"\n[rank {rank}] {report.nodeid} failed ({report.when}); aborting all ranks\n"
        f"{report.longreprtext}",
        file=sys.stderr,
        flush=True,
    )
    time.sleep(0.5)  # let mpiexec forward the message before the abort tears it down
    MPI.COMM_WORLD.Abort(1)


@pytest.fixture(autouse=True)
def one_thread():
    """Run single-threaded (two ranks share two cores; small torch ops collapse otherwise)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
