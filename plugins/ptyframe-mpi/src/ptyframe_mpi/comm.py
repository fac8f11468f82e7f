"""Run one reconstruction on several MPI ranks, each holding a shard of the patterns.

``distribution=mpi_data_parallel`` (Adorym supplement, section G, "data parallelism"):

* every rank reads only its contiguous shard of the tiles (``Distribution.shard``);
* autodiff engine: the gradients of every parameter are summed over ranks after each
  minibatch (``allreduce_sum_``), and minibatches are drawn from one global permutation, so
  two ranks follow the single-process trajectory to rounding;
* PIE engines (parallel variant): each rank sweeps its own positions starting from the same
  object and probe, then object and probe are averaged over ranks (``allreduce_mean_``); with
  one rank this is plain ePIE/rPIE;
* rank 0 writes every output and draws the progress bar; the others log warnings only;
* the output directory is rank 0's (``broadcast_object``), so all ranks agree;
* a rank that fails calls ``MPI.COMM_WORLD.Abort`` after printing its error, so no rank hangs
  in a collective.

Complex tensors are reduced as float pairs through NumPy views (no copies on CPU).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptyframe.distributed.base import Distribution


@dataclass
class MpiDataParallelConfig:
    """Data-parallel over MPI ranks: shard the patterns, all-reduce updates or gradients."""

    name: str = "mpi_data_parallel"
    #: Torch threads per rank (one rank per core is the fast layout).
    threads_per_rank: int = 1


def _comm() -> Any:
    from mpi4py import MPI

    return MPI.COMM_WORLD


def _as_numpy(tensor: torch.Tensor) -> np.ndarray:
    if tensor.device.type != "cpu":
        raise RuntimeError("mpi_data_parallel reduces CPU tensors; GPU-aware MPI is not wired")
    t = torch.view_as_real(tensor) if tensor.is_complex() else tensor
    if not t.is_contiguous():
        raise RuntimeError("mpi_data_parallel needs contiguous tensors")
    return t.detach().numpy()


class MpiDataParallel(Distribution):
    """``Distribution`` over ``MPI.COMM_WORLD``."""

    def __init__(self, config: MpiDataParallelConfig | None = None) -> None:
        self.config = config or MpiDataParallelConfig()
        self.comm = _comm()
        self.rank = int(self.comm.Get_rank())
        self.size = int(self.comm.Get_size())
        torch.set_num_threads(int(self.config.threads_per_rank))
        if self.rank != 0:
            logging.getLogger().setLevel(logging.WARNING)

    def allreduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        from mpi4py import MPI

        if self.size > 1:
            self.comm.Allreduce(MPI.IN_PLACE, _as_numpy(tensor), op=MPI.SUM)
        return tensor

    def broadcast_(self, tensor: torch.Tensor, root: int = 0) -> torch.Tensor:
        if self.size > 1:
            self.comm.Bcast(_as_numpy(tensor), root=root)
        return tensor

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return self.comm.bcast(obj, root=root) if self.size > 1 else obj

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, message: str, code: int = 1) -> None:
        print(
            f"ptyframe: rank {self.rank} of {self.size} failed: {message}; aborting all ranks",
            file=sys.stderr,
            flush=True,
        )
        self.comm.Abort(code)


def build_mpi_data_parallel(config: MpiDataParallelConfig, context: Any) -> MpiDataParallel:
    """Build the data-parallel distribution on ``MPI.COMM_WORLD``."""
    if int(config.threads_per_rank) < 1:
        from ptyframe.errors import ConfigError

        raise ConfigError(f"distribution.threads_per_rank = {config.threads_per_rank} must be >= 1")
    return MpiDataParallel(config)
