"""Shared logic of the two object-splitting modes (``mpi_distributed_object``, ``hdf5_object``).

Two ways to run, with the same engines (they only call ``allreduce_sum_``/``allreduce_mean_``):

* **windows** (after ``localize_state``): each rank's state holds only the object rows its
  tiles touch (``ptyframe_mpi.windows``). A reduction of a window tensor (the object for
  PIE, its gradient for autodiff) goes to the rows' owners and back: rank ``r`` receives, for
  every row ``y`` of its window, ``sum_{q : y in W_q} X_q[y]`` (sum) or the mean over *all*
  ranks, ranks without row ``y`` counting with the authoritative value (mean). Both equal
  the data-parallel all-reduce restricted to the window, so the engines run unchanged and
  give the data-parallel result, while per-rank object memory is ``~1/n``.
  ``gather_state`` reassembles the whole state on the root.
* **replicated** (``distribution.windows=false``, or a caller that never calls
  ``localize_state``; the whole state on every rank): every tensor
  of at least ``min_routed_elements`` real values is reduced through the same machinery with
  every rank holding every row (a reduce-scatter to owners, then a gather): the result is the
  data-parallel one; memory is not reduced.

Subclasses provide ``_exchange`` (how rows travel), ``_store_object`` (where the
authoritative object lives) and ``_window_object`` (how a rank gets its starting window).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptyframe.errors import ConfigError
from ptyframe.state import ReconstructionState
from ptyframe_mpi.comm import MpiDataParallel, _as_numpy, check_rank_fields
from ptyframe_mpi.windows import RowPlan, check_window_mode, even_split, tile_window, window_view

log = logging.getLogger("ptyframe")


@dataclass
class ObjectModeFields:
    """Fields common to both object-splitting modes (see each mode's config)."""

    #: Torch threads of each rank.
    threads_per_rank: int = 1
    #: Work on object windows when the caller asks (``localize_state``); False: every rank
    #: keeps the whole object (any engine works; reductions still go through the mode).
    windows: bool = True
    #: How tiles are split: contiguous index blocks, strided, or by row position (``rows``:
    #: for scans not stored in raster order; the runner calls ``shard_tiles``).
    shard: str = "contiguous"
    #: Extra object rows above and below each rank's tiles (room for position refinement).
    halo_px: int = 2
    #: Replicated path: tensors with at least this many real values go through the owners.
    min_routed_elements: int = 262144
    #: Rows are exchanged in pieces of about this many MiB (bounds the temporary buffers).
    exchange_mib: float = 16.0


def check_fields(cfg: Any) -> None:
    """Raise ``ConfigError`` for out-of-range common fields."""
    check_rank_fields(cfg)
    if int(cfg.halo_px) < 0 or int(cfg.min_routed_elements) < 0:
        raise ConfigError("distribution.halo_px and min_routed_elements must be >= 0")


def row_ranges(mask: np.ndarray) -> list[tuple[int, int]]:
    """Return the runs ``[lo, hi)`` where boolean ``mask`` is True."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return [(int(lo), int(hi)) for lo, hi in zip(edges[::2], edges[1::2], strict=True)]


class ObjectMode(MpiDataParallel):
    """Base of the object-splitting distributions (see the module docstring)."""

    mode = "object mode"

    def __init__(self, config: Any, context: Any = None, run: Any = None) -> None:
        """``run``: the run config (``ptyframe.compose.build_distribution`` passes it), read
        to check that the engine can work on object windows; None: nothing is checked."""
        super().__init__(config)
        self.context = context
        self.run = run
        self.plan: RowPlan | None = None  # set by localize_state
        self.width = 0
        self._uncovered: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._cropped: list[str] = []
        self._indices = np.zeros(0, dtype=np.int64)

    @property
    def holds_whole_state(self) -> bool:
        return self.plan is None

    def layout(self) -> object:
        """Return the object rows ``[[a, b], ...]`` each rank holds (None: not split)."""
        return None if self.plan is None else self.plan.windows.tolist()

    # ------------------------------------------------------------------ reductions
    def allreduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        return self._reduce(tensor, mean=False)

    def allreduce_mean_(self, tensor: torch.Tensor) -> torch.Tensor:
        return self._reduce(tensor, mean=True)

    def _reduce(self, tensor: torch.Tensor, mean: bool) -> torch.Tensor:
        if self.size == 1:
            return tensor
        x = self._window(tensor)
        if x is not None:
            assert self.plan is not None
            self._exchange(x, self.plan, mean, window=True)
            return tensor
        n_real = tensor.numel() * (2 if tensor.is_complex() else 1)
        if self.plan is None and n_real >= int(self.config.min_routed_elements) and n_real > 0:
            flat = _as_numpy(tensor).reshape(1, -1, 1)
            self._exchange(flat, RowPlan.full(flat.shape[1], self.size), mean, window=False)
            return tensor
        if mean:
            return super().allreduce_mean_(tensor)
        return super().allreduce_sum_(tensor)

    def _window(self, tensor: torch.Tensor) -> np.ndarray | None:
        """Return the window view of ``tensor`` if every rank sees a window tensor, else None."""
        if self.plan is None:
            return None
        x = window_view(tensor, self.plan.height(self.rank), self.width)
        from mpi4py import MPI

        flags = np.array([x is not None, x is None], dtype=np.int32)
        self.comm.Allreduce(MPI.IN_PLACE, flags, op=MPI.MIN)
        if not flags.any():
            raise RuntimeError(
                f"{self.mode}: a tensor of shape {tuple(tensor.shape)} is an object window on "
                "some ranks only; the engine reduced tensors the windows cannot place"
            )
        return x

    def _chunk_rows(self, x: np.ndarray) -> int:
        """Return how many rows of ``x`` ``[L, h, C]`` fit in ``exchange_mib``."""
        row_bytes = max(1, x.shape[0] * x.shape[2] * x.itemsize)
        return max(1, int(float(self.config.exchange_mib) * 2**20 // row_bytes))

    @abstractmethod
    def _exchange(self, x: np.ndarray, plan: RowPlan, mean: bool, window: bool) -> None:
        """Reduce ``x`` ``[L, h, C]`` (this rank's rows of ``plan``) over ranks, in place."""

    # ------------------------------------------------------------------ windows
    def localize_state(
        self, state: ReconstructionState, indices: np.ndarray
    ) -> ReconstructionState:
        """Return the state restricted to the rows this rank's tiles touch (see module doc)."""
        if not self.config.windows:
            return state
        check_window_mode(self.run, self.mode, getattr(self.context, "registry", None))
        ny, nx = (int(v) for v in state.object.shape[-2:])
        m = state.window[0]
        if nx == state.window[1] and ny > m:
            raise ConfigError(
                f"{self.mode}: the object is as wide as the probe ({nx} px); windows would be "
                "ambiguous with probe-shaped tensors: use distribution=mpi_data_parallel"
            )
        pos = state.positions_px.detach().cpu().numpy()
        a, b = tile_window(pos[np.asarray(indices)], m, ny, int(self.config.halo_px))
        windows = np.array(self.allgather_object((a, b)), dtype=np.int64).reshape(-1, 2)
        self.plan = RowPlan(ny, windows, even_split(ny, self.size))
        self.width = nx
        self._indices = np.asarray(indices, dtype=np.int64)
        self._keep_uncovered(state)
        self._store_object(state)
        local_obj = self._window_object(state)
        extras = dict(state.extras)
        self._cropped = [k for k, v in extras.items() if tuple(v.shape[-2:]) == (ny, nx)]
        for k in self._cropped:
            extras[k] = extras[k][..., a:b, :].clone()
        positions = state.positions_px.clone()
        positions[:, 0] -= a
        mib = local_obj.numel() * local_obj.element_size() / 2**20
        log.info(
            "%s: rank %d holds object rows [%d, %d) of %d (%.1f MiB)",
            self.mode,
            self.rank,
            a,
            b,
            ny,
            mib,
        )
        return ReconstructionState(local_obj, state.probe.clone(), positions, extras)

    def _keep_uncovered(self, state: ReconstructionState) -> None:
        """Keep the rows of this rank's slab that no window holds (they never change)."""
        assert self.plan is not None
        lo, hi = self.plan.slabs[self.rank]
        rows = lo + np.flatnonzero(self.plan.includers()[lo:hi] == 0)
        ny, nx = self.plan.n_rows, self.width
        self._uncovered = {"object": (rows, state.object[:, rows].cpu().numpy())}
        for k, v in state.extras.items():
            if tuple(v.shape[-2:]) == (ny, nx):
                self._uncovered[k] = (rows, v[..., rows, :].cpu().numpy())

    @abstractmethod
    def _store_object(self, state: ReconstructionState) -> None:
        """Set up the authoritative object storage from the whole starting ``state``."""

    @abstractmethod
    def _window_object(self, state: ReconstructionState) -> torch.Tensor:
        """Return this rank's starting object window ``[S, h, Nx]`` (a new tensor)."""

    def gather_state(self, state: ReconstructionState) -> ReconstructionState | None:
        """Reassemble the whole state on the root from every rank's window (collective)."""
        if self.plan is None:
            return state
        a, b = self.plan.windows[self.rank]
        src = self.plan.source()
        mine = a + np.flatnonzero(src[a:b] == self.rank)
        arrays = {"object": state.object[:, mine - a].cpu().numpy()}
        for k in self._cropped:
            arrays[k] = state.extras[k][..., mine - a, :].cpu().numpy()
        pos = state.positions_px.detach().cpu().numpy()[self._indices].copy()
        pos[:, 0] += a
        parts = self.comm.gather((mine, arrays, self._uncovered, self._indices, pos), root=0)
        if not self.is_root:
            return None
        local = state.object.detach().cpu().numpy()
        obj = np.empty((local.shape[0], self.plan.n_rows, self.width), dtype=local.dtype)
        full_extras = {k: v.clone() for k, v in state.extras.items() if k not in self._cropped}
        extra_np = {
            k: np.empty(
                (*state.extras[k].shape[:-2], self.plan.n_rows, self.width),
                dtype=state.extras[k].cpu().numpy().dtype,
            )
            for k in self._cropped
        }
        positions = state.positions_px.detach().cpu().numpy().copy()
        for rows, arrs, unc, idx, p in parts:
            obj[:, rows] = arrs["object"]
            for k in self._cropped:
                extra_np[k][..., rows, :] = arrs[k]
            for k, (urows, vals) in unc.items():
                target = obj if k == "object" else extra_np.get(k)
                if target is not None:
                    target[..., urows, :] = vals
            positions[idx] = p
        for k, v in extra_np.items():
            full_extras[k] = torch.from_numpy(v)
        return ReconstructionState(
            torch.from_numpy(obj),
            state.probe.detach().clone(),
            torch.from_numpy(positions),
            full_extras,
        )
