"""Run one reconstruction on several MPI ranks, each holding a shard of the patterns.

``distribution=mpi_data_parallel`` (Adorym supplement, section G, "data parallelism"):

* every rank reads only its shard of the tiles (``Distribution.shard``): contiguous index
  blocks (default), ``shard=strided`` (rank ``r`` takes tiles ``r, r + n, ...``) or
  ``shard=rows`` (blocks of tiles sorted by row position, through ``shard_tiles``: what the
  runner calls, so a scan stored in any order still gives compact object windows);
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

Complex tensors are reduced as float pairs through NumPy views (no copies on CPU), in pieces
of ``exchange_mib`` so that MPI's own reduction buffers stay small (element-wise sums: the
pieces do not change the result). Every rank holds the whole object: per-rank memory does not
shrink with the rank count (see ``mpi_distributed_object`` and ``hdf5_object`` for that).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptyframe.distributed.base import Distribution
from ptyframe.errors import ConfigError

#: Seconds between printing a failure and ``MPI_Abort`` (lets mpiexec forward the message).
ABORT_GRACE_S = 0.5
#: How the tiles are split over ranks (see the module docstring).
SHARDS = ("contiguous", "strided", "rows")


@dataclass
class MpiDataParallelConfig:
    """Data-parallel over MPI ranks: shard the patterns, all-reduce updates or gradients."""

    name: str = "mpi_data_parallel"
    #: Torch threads per rank (one rank per core is the fast layout).
    threads_per_rank: int = 1
    #: Tile split: contiguous, strided or rows (see the module docstring).
    shard: str = "contiguous"
    #: All-reduce large tensors in pieces of about this many MiB (bounds MPI's own buffers).
    exchange_mib: float = 16.0

    def __post_init__(self) -> None:
        check_rank_fields(self)


def check_rank_fields(cfg: Any) -> None:
    """Raise ``ConfigError`` for out-of-range ``threads_per_rank``, ``shard``, ``exchange_mib``."""
    if int(cfg.threads_per_rank) < 1:
        raise ConfigError(f"distribution.threads_per_rank = {cfg.threads_per_rank} must be >= 1")
    if cfg.shard not in SHARDS:
        raise ConfigError(f"distribution.shard = {cfg.shard!r}; use one of {', '.join(SHARDS)}")
    if not float(cfg.exchange_mib) > 0:
        raise ConfigError(f"distribution.exchange_mib = {cfg.exchange_mib} must be > 0")


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

    def shard(self, n_items: int) -> np.ndarray:
        """Return this rank's tile indices (contiguous blocks or strided)."""
        shard = getattr(self.config, "shard", "contiguous")
        if shard == "strided":
            return np.arange(self.rank, n_items, self.size, dtype=np.int64)
        if shard == "rows":
            raise ConfigError(
                "distribution.shard=rows needs the tile positions, but this caller asks by "
                "count only (call shard_tiles with the positions); use shard=contiguous or strided"
            )
        return super().shard(n_items)

    def shard_tiles(self, positions_px: np.ndarray) -> np.ndarray:
        """Return this rank's tiles; ``shard=rows`` cuts the tiles sorted by (y, x) in blocks."""
        if getattr(self.config, "shard", "contiguous") != "rows":
            return self.shard(len(positions_px))
        pos = np.asarray(positions_px, dtype=np.float64)
        order = np.lexsort((pos[:, 1], pos[:, 0]))
        bounds = np.linspace(0, len(pos), self.size + 1).round().astype(np.int64)
        return np.sort(order[bounds[self.rank] : bounds[self.rank + 1]]).astype(np.int64)

    def allreduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        from mpi4py import MPI

        if self.size > 1:
            flat = _as_numpy(tensor).reshape(-1)
            mib = float(getattr(self.config, "exchange_mib", 16.0))
            step = max(1, int(mib * 2**20) // flat.itemsize)
            for start in range(0, max(flat.size, 1), step):
                self.comm.Allreduce(MPI.IN_PLACE, flat[start : start + step], op=MPI.SUM)
        return tensor

    def broadcast_(self, tensor: torch.Tensor, root: int = 0) -> torch.Tensor:
        if self.size > 1:
            self.comm.Bcast(_as_numpy(tensor), root=root)
        return tensor

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return self.comm.bcast(obj, root=root) if self.size > 1 else obj

    def allgather_object(self, obj: Any) -> list[Any]:
        return list(self.comm.allgather(obj)) if self.size > 1 else [obj]

    def gather_object(self, obj: Any, root: int = 0) -> list[Any] | None:
        if self.size == 1:
            return [obj]
        parts = self.comm.gather(obj, root=root)
        return list(parts) if parts is not None else None

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, message: str, code: int = 1) -> None:
        """Print the error, give the launcher a moment to forward it, then abort every rank."""
        print(
            f"ptyframe: rank {self.rank} of {self.size} failed: {message}; aborting all ranks",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(ABORT_GRACE_S)  # MPI_Abort can tear down the launcher's output forwarding
        self.comm.Abort(code)
