"""``distribution=mpi_distributed_object``: the object split into row slabs over MPI ranks.

Adorym supplement, section G ("distributed object"): rank ``r`` owns rows
``[s_r, s_{r+1})`` of the object (its *slab*, the authoritative copy) and works on the window
``W_r`` its tiles touch (``ptyframe_mpi.windows``). A reduction of window tensors ``X_q``
(the PIE object after a sweep; the autodiff object gradient of a minibatch) is two
``Alltoallv`` calls:

1. scatter: rank ``q`` sends rows ``W_q ∩ slab_p`` to owner ``p``; the owner sums them in
   rank order, ``A[y] = sum_{q : y in W_q} X_q[y]``; for a mean it adds the slab's old value
   ``O[y]`` for every rank that does not hold row ``y``, ``A[y] <- (A[y] + (n - n_y) O[y]) / n``,
   and stores ``A`` as the new slab;
2. gather: owner ``p`` sends rows ``slab_p ∩ W_q`` of ``A`` back to every rank ``q``.

Every rank then holds, for each row of its window, exactly what the data-parallel
all-reduce would give for that row, so the engines' updates agree with data-parallel; for
two ranks the sums are even bit-identical (``0 + x0 + x1 = x0 + x1``). Rows travel in pieces
of ``exchange_mib``, so the buffers stay small. Per rank: the window (``~1/n + M/Ny`` of the
object for a raster scan split into contiguous shards) and, for PIE engines only (autodiff
never averages the object), the slab (``1/n``), plus the engine's own copies of the window
(autodiff: parameters, gradients, Adam moments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptyframe.state import ReconstructionState
from ptyframe_mpi.objectmode import ObjectMode, ObjectModeFields, check_fields, row_ranges
from ptyframe_mpi.windows import RowPlan, overlap


@dataclass
class MpiDistributedObjectConfig(ObjectModeFields):
    """Object split into row slabs over MPI ranks (Adorym's distributed-object mode)."""

    name: str = "mpi_distributed_object"

    def __post_init__(self) -> None:
        check_fields(self)


def _displacements(counts: list[int]) -> list[int]:
    """Return the offsets of consecutive blocks of ``counts`` elements."""
    return [int(v) for v in np.concatenate([[0], np.cumsum(counts)[:-1]])]


def _pieces(
    x: np.ndarray, base: int, ranges: list[tuple[int, int]]
) -> tuple[np.ndarray, list[int], list[int], bool]:
    """Return (buffer, counts, displacements, is_view) sending rows ``ranges`` of ``x``.

    ``x`` is ``[L, h, C]`` holding rows ``[base, base + h)``. With ``L == 1`` the rows are
    contiguous and the buffer is ``x`` itself (no copy; ranges may overlap).
    """
    lead, _, width = x.shape
    counts = [lead * (hi - lo) * width for lo, hi in ranges]
    if lead == 1:
        displs = [(lo - base) * width if hi > lo else 0 for lo, hi in ranges]
        return x.reshape(-1), counts, displs, True
    displs = _displacements(counts)
    parts = [x[:, lo - base : hi - base].reshape(-1) for lo, hi in ranges if hi > lo]
    buf = np.concatenate(parts) if parts else np.empty(0, dtype=x.dtype)
    return buf, counts, displs, False


class MpiDistributedObject(ObjectMode):
    """``Distribution`` whose object reductions go through row-slab owners (module doc)."""

    mode = "mpi_distributed_object"

    def __init__(
        self, config: MpiDistributedObjectConfig, context: Any = None, run: Any = None
    ) -> None:
        super().__init__(config, context, run)
        self.slab: np.ndarray | None = None  # authoritative rows [L, slab_h, C] (windows only)

    def _store_object(self, state: ReconstructionState) -> None:
        assert self.plan is not None
        if self.size == 1 or not self._averages_object():
            return  # nothing will average the object: sums need no authoritative copy
        lo, hi = self.plan.slabs[self.rank]
        rows = torch.view_as_real(state.object[:, lo:hi].contiguous())
        self.slab = rows.detach().cpu().numpy().reshape(state.object.shape[0], hi - lo, -1).copy()

    def _averages_object(self) -> bool:
        """Return whether the engine averages the object (PIE family; unknown: assume so)."""
        run = self.run
        if run is None:
            return True
        engine = getattr(run, "engine", None)
        name = engine if isinstance(engine, str) or engine is None else None
        if name is None:
            name = engine.get("name") if isinstance(engine, dict) else getattr(engine, "name", "")
        return str(name or "epie") != "autodiff"

    def _window_object(self, state: ReconstructionState) -> torch.Tensor:
        assert self.plan is not None
        a, b = self.plan.windows[self.rank]
        return state.object[:, a:b].clone()

    def _exchange(self, x: np.ndarray, plan: RowPlan, mean: bool, window: bool) -> None:
        """Reduce ``x`` through the slab owners, ``exchange_mib`` of rows at a time."""
        includers = plan.includers()
        first, last = int(plan.windows[:, 0].min()), int(plan.windows[:, 1].max())
        step = self._chunk_rows(x)
        for c0 in range(first, last, step):
            self._exchange_rows(x, plan, (c0, min(c0 + step, last)), mean, window, includers)

    def _exchange_rows(
        self,
        x: np.ndarray,
        plan: RowPlan,
        chunk: tuple[int, int],
        mean: bool,
        window: bool,
        includers: np.ndarray,
    ) -> None:
        """Reduce the rows ``chunk`` (global) of every rank's window (two ``Alltoallv``)."""
        size = self.size
        a = int(plan.windows[self.rank][0])
        mine = overlap(plan.windows[self.rank], chunk)
        slab = overlap(plan.slabs[self.rank], chunk)
        s0 = slab[0]
        lead, width = x.shape[0], x.shape[2]
        to_owner = [overlap(mine, plan.slabs[p]) for p in range(size)]
        from_ranks = [overlap(overlap(plan.windows[q], chunk), slab) for q in range(size)]
        # 1. scatter my window rows to their owners, who sum them in rank order
        sbuf, scounts, sdispls, _ = _pieces(x, a, to_owner)
        rcounts = [lead * (hi - lo) * width for lo, hi in from_ranks]
        rdispls = _displacements(rcounts)
        rbuf = np.empty(int(sum(rcounts)), dtype=x.dtype)
        self.comm.Alltoallv([sbuf, (scounts, sdispls)], [rbuf, (rcounts, rdispls)])
        acc = np.zeros((lead, slab[1] - s0, width), dtype=x.dtype)
        for (lo, hi), off, cnt in zip(from_ranks, rdispls, rcounts, strict=True):
            if hi > lo:
                acc[:, lo - s0 : hi - s0] += rbuf[off : off + cnt].reshape(lead, hi - lo, width)
        del rbuf
        if mean:
            self._finish_mean(acc, s0, window, includers[s0 : slab[1]])
        # 2. owners send the reduced rows back to every rank holding them
        sbuf2, scounts2, sdispls2, _ = _pieces(acc, s0, from_ranks)
        rbuf2, rcounts2, rdispls2, direct = _pieces(x, a, to_owner)
        if not direct:
            rbuf2 = np.empty_like(rbuf2)
        self.comm.Alltoallv([sbuf2, (scounts2, sdispls2)], [rbuf2, (rcounts2, rdispls2)])
        if not direct:
            for (lo, hi), off, cnt in zip(to_owner, rdispls2, rcounts2, strict=True):
                if hi > lo:
                    x[:, lo - a : hi - a] = rbuf2[off : off + cnt].reshape(lead, hi - lo, width)

    def _finish_mean(self, acc: np.ndarray, s0: int, window: bool, n: np.ndarray) -> None:
        """Turn the owner's sums of rows ``s0 + i`` into means; store them in the slab.

        ``n[i]`` ranks hold row ``s0 + i``; the other ``size - n[i]`` count with the slab's
        old value (their replica would still hold it: their tiles never touch the row).
        """
        partial = (n > 0) & (n < self.size)
        if not window:
            acc /= self.size
            return
        assert self.plan is not None
        base = int(self.plan.slabs[self.rank][0])
        slab = self.slab
        if slab is None or slab.shape[0] * slab.shape[2] != acc.shape[0] * acc.shape[2]:
            if partial.any():
                raise RuntimeError(
                    f"{self.mode}: a mean over object windows needs the slab of the object; "
                    "only the object itself can be averaged on windows"
                )
            acc /= self.size
            return
        old = slab[:, s0 - base : s0 - base + acc.shape[1]]
        for lo, hi in row_ranges(partial):
            k = (self.size - n[lo:hi]).astype(acc.dtype)[None, :, None]
            acc[:, lo:hi] += k * old[:, lo:hi]
        acc /= self.size
        covered = n > 0
        old[:, covered] = acc[:, covered]
