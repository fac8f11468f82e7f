"""Define how engines talk to other processes, and the single-process implementation.

Engines never import mpi4py: they call these methods, which are no-ops (or identities) in a
single process. MPI implementations live in the separate ``ptyframe-mpi`` distribution.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch

if TYPE_CHECKING:
    from ptyframe.state import ReconstructionState


#: Any picklable object passed between ranks.
T = TypeVar("T")


class Distribution(ABC):
    """A group of cooperating processes (ranks)."""

    rank: int = 0
    size: int = 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def shard(self, n_items: int) -> np.ndarray:
        """Return the indices of ``range(n_items)`` this rank owns (contiguous blocks)."""
        bounds = np.linspace(0, n_items, self.size + 1).round().astype(np.int64)
        return np.arange(bounds[self.rank], bounds[self.rank + 1], dtype=np.int64)

    @abstractmethod
    def allreduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks, in place; return it."""

    def allreduce_mean_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Average ``tensor`` over ranks, in place; return it."""
        self.allreduce_sum_(tensor)
        if self.size > 1:
            tensor.div_(self.size)
        return tensor

    def sum_scalars(self, *values: float) -> tuple[float, ...]:
        """Return each scalar summed over ranks."""
        if self.size == 1:
            return tuple(float(v) for v in values)
        t = torch.tensor(values, dtype=torch.float64)
        self.allreduce_sum_(t)
        return tuple(float(v) for v in t)

    @abstractmethod
    def broadcast_(self, tensor: torch.Tensor, root: int = 0) -> torch.Tensor:
        """Overwrite ``tensor`` on every rank with root's copy; return it."""

    def broadcast_object(self, obj: T, root: int = 0) -> T:
        """Return root's ``obj`` on every rank (a picklable Python object of one type)."""
        return obj

    def allgather_object(self, obj: object) -> list[object]:
        """Return every rank's ``obj`` (picklable), in rank order, on every rank."""
        return [obj]

    def gather_object(self, obj: object, root: int = 0) -> list[object] | None:
        """Return every rank's ``obj`` in rank order on ``root``, None elsewhere."""
        return [obj]

    def layout(self) -> object:
        """Return how the state is split over ranks (picklable; None: every rank holds all).

        A checkpoint of a split state records it; resuming needs the same layout.
        """
        return None

    def shard_tiles(self, positions_px: np.ndarray) -> np.ndarray:
        """Return the tiles this rank owns given all positions ``[N, 2]`` (default: ``shard``).

        Modes that split the object by rows may group tiles by position instead of by index.
        """
        return self.shard(len(positions_px))

    @property
    def holds_whole_state(self) -> bool:
        """Return whether this rank's state is the whole state (False after localize_state)."""
        return True

    def localize_state(
        self, state: ReconstructionState, indices: np.ndarray
    ) -> ReconstructionState:
        """Return the part of ``state`` this rank works on; default: all of it (a replica).

        Distributed-object modes return a state whose object holds only the rows that the
        tiles ``indices`` touch, with positions shifted to match; ``gather_state`` undoes it.
        """
        return state

    def gather_state(self, state: ReconstructionState) -> ReconstructionState | None:
        """Return the whole state from what ``localize_state`` returned (root; None elsewhere).

        Collective: every rank calls it. Replicating modes return ``state`` on every rank.
        """
        return state

    def barrier(self) -> None:
        """Wait for every rank."""

    def abort(self, message: str, code: int = 1) -> None:
        """Stop every rank after a failure on this one (single process: nothing to stop)."""


@dataclass
class SingleConfig:
    """One process: no communication."""

    name: str = "single"


class SingleProcess(Distribution):
    """One process, no communication."""

    def __init__(self, config: SingleConfig | None = None) -> None:
        self.config = config or SingleConfig()

    def allreduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def broadcast_(self, tensor: torch.Tensor, root: int = 0) -> torch.Tensor:
        return tensor
