"""``distribution=hdf5_object``: the object and the gradient exchange live in HDF5 files.

Adorym supplement, section G ("HDF5 file as object container"):

* ``object.h5`` (dataset ``object``, real view ``[S, Ny, 2 Nx]``) holds the authoritative
  object; each rank reads only its window rows from it. After every mean (PIE) and in
  ``gather_state`` each row is written back by the lowest rank holding it:

  - with parallel HDF5 (h5py built with ``HDF5_MPI=ON``, ``h5py.get_config().mpi``; ``make
    parallel-hdf5`` builds one) every rank writes its rows at once, the file opened
    collectively with ``driver="mpio"``;
  - with the PyPI h5py (no MPI) an HDF5 file must not have two writers at once, so the ranks
    write one after another (a token passed along the ranks; HDF5 file locking is off and the
    order is kept by MPI messages and barriers instead).

* Reductions go through one file per rank and call, ``part{g}-rank{r}.h5`` (``g`` alternates
  0/1, so one barrier per call separates writers from readers): rank ``r`` writes its window
  rows, waits for every rank, then reads from the other ranks' files only the rows that
  overlap its window and sums them in rank order (every rank adds the same numbers in the same
  order, so all agree bit for bit). A mean adds the old rows from ``object.h5`` for the ranks
  that do not hold a row, exactly as ``mpi_distributed_object`` does with its slabs.

A rank holds its window, one window-sized sum and the overlap it reads: no slab, no whole
object. Costs: file-system round trips on every reduction, and on several nodes
``scratch_dir`` must be a file system every rank sees (checked at start).
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ptyframe.errors import ConfigError
from ptyframe.state import ReconstructionState
from ptyframe_mpi.objectmode import ObjectMode, ObjectModeFields, check_fields, row_ranges
from ptyframe_mpi.windows import RowPlan, overlap

log = logging.getLogger("ptyframe")


@dataclass
class Hdf5ObjectConfig(ObjectModeFields):
    """Object and gradient exchange in HDF5 files shared by the ranks (Adorym's HDF5 mode)."""

    name: str = "hdf5_object"
    #: Parent directory of the run's files (a new subdirectory per run); on several nodes it
    #: must be a shared file system. None: the system's temporary directory.
    scratch_dir: str | None = None
    #: Keep the files after the run (``object.h5`` then holds the final object).
    keep_files: bool = False
    #: With an h5py built for MPI (``h5py.get_config().mpi``), write ``object.h5``
    #: collectively (``driver="mpio"``); False: one rank after another, as without it.
    parallel_hdf5: bool = True

    def __post_init__(self) -> None:
        check_fields(self)


class Hdf5Object(ObjectMode):
    """``Distribution`` whose object and reductions go through HDF5 files (module doc)."""

    mode = "hdf5_object"

    def __init__(self, config: Hdf5ObjectConfig, context: Any = None, run: Any = None) -> None:
        super().__init__(config, context, run)
        self.parallel_hdf5 = bool(h5py.get_config().mpi)
        made: tuple[str, str] | None = None  # ("ok", path) or ("error", why), from the root
        if self.is_root:
            parent = config.scratch_dir
            try:
                if parent:
                    Path(parent).mkdir(parents=True, exist_ok=True)
                made = ("ok", tempfile.mkdtemp(prefix="ptyframe-hdf5-object-", dir=parent))
            except OSError as exc:
                made = ("error", f"{type(exc).__name__}: {exc}")
        kind, value = self.broadcast_object(made)  # every rank fails alike: no rank hangs
        if kind == "error":
            where = config.scratch_dir or "the temporary directory"
            raise ConfigError(
                f"hdf5_object: cannot create its files in {where} ({value}); set "
                "distribution.scratch_dir to a writable directory that every rank sees"
            )
        self.dir = Path(str(value))
        seen = self.allgather_object(self.dir.is_dir())
        if not all(seen):
            missing = [r for r, ok in enumerate(seen) if not ok]
            raise ConfigError(
                f"hdf5_object: ranks {missing} cannot see {self.dir}; set "
                "distribution.scratch_dir to a file system shared by every rank"
            )
        self.object_path = self.dir / "object.h5"
        self._generation = 0
        atexit.register(self._cleanup)
        if self.is_root:
            log.info("hdf5_object: files in %s (parallel HDF5: %s)", self.dir, self.collective)

    # ------------------------------------------------------------------ object file
    def _store_object(self, state: ReconstructionState) -> None:
        full = torch.view_as_real(state.object.detach().cpu().contiguous()).numpy()
        full = full.reshape(full.shape[0], full.shape[1], -1)
        if self.collective:
            # every rank holds the starting object: each writes its slab, all at once
            assert self.plan is not None
            lo, hi = (int(v) for v in self.plan.slabs[self.rank])
            with self._open_collective("w") as f:
                dset = f.create_dataset("object", shape=full.shape, dtype=full.dtype)
                dset[:, lo:hi] = full[:, lo:hi]
            return
        if self.is_root:
            with h5py.File(self.object_path, "w", locking=False) as f:
                f.create_dataset("object", data=full)
        self.barrier()

    @property
    def collective(self) -> bool:
        """Whether ``object.h5`` is written collectively (parallel HDF5, ``driver="mpio"``)."""
        return self.parallel_hdf5 and bool(self.config.parallel_hdf5) and self.size > 1

    def _open_collective(self, mode: str) -> h5py.File:
        """Open ``object.h5`` on every rank at once through MPI-IO (a collective call)."""
        return h5py.File(self.object_path, mode, driver="mpio", comm=self.comm)

    def _window_object(self, state: ReconstructionState) -> torch.Tensor:
        assert self.plan is not None
        a, b = (int(v) for v in self.plan.windows[self.rank])
        with h5py.File(self.object_path, "r", locking=False) as f:
            rows = f["object"][:, a:b]
        s, h = rows.shape[0], rows.shape[1]
        pairs = torch.from_numpy(rows).reshape(s, h, self.width, 2)
        return torch.view_as_complex(pairs.contiguous())

    def _write_rows_in_turn(self, x: np.ndarray, plan: RowPlan) -> None:
        """Write the rows of window ``x`` this rank is the source of into ``object.h5``.

        Parallel HDF5: every rank writes its rows at once (disjoint hyperslabs, independent
        I/O inside a collective open and close). Otherwise one rank after another.
        """
        a, b = (int(v) for v in plan.windows[self.rank])
        mine = row_ranges(plan.source()[a:b] == self.rank)
        self.barrier()  # every rank has finished reading object.h5
        if self.collective:
            with self._open_collective("r+") as f:
                for lo, hi in mine:
                    f["object"][:, a + lo : a + hi] = x[:, lo:hi]
            return
        if self.rank > 0:
            self.comm.recv(source=self.rank - 1, tag=17)
        if mine:
            with h5py.File(self.object_path, "r+", locking=False) as f:
                for lo, hi in mine:
                    f["object"][:, a + lo : a + hi] = x[:, lo:hi]
        if self.rank < self.size - 1:
            self.comm.send(None, dest=self.rank + 1, tag=17)

    def gather_state(self, state: ReconstructionState) -> ReconstructionState | None:
        """Write the final rows into ``object.h5``, then reassemble the state on the root."""
        if self.plan is not None:
            obj = torch.view_as_real(state.object.detach().cpu().contiguous()).numpy()
            self._write_rows_in_turn(obj.reshape(obj.shape[0], obj.shape[1], -1), self.plan)
            self.barrier()
        return super().gather_state(state)

    # ------------------------------------------------------------------ reductions
    def _exchange(self, x: np.ndarray, plan: RowPlan, mean: bool, window: bool) -> None:
        rank = self.rank
        g = self._generation % 2
        self._generation += 1
        with h5py.File(self.dir / f"part{g}-rank{rank}.h5", "w", locking=False) as f:
            f.create_dataset("x", data=x)
        self.barrier()
        w = plan.windows[rank]
        a = int(w[0])
        n = plan.includers()
        step = self._chunk_rows(x)
        files = {
            q: h5py.File(self.dir / f"part{g}-rank{q}.h5", "r", locking=False)
            for q in range(self.size)
            if q != rank and overlap(w, plan.windows[q])[1] > overlap(w, plan.windows[q])[0]
        }
        obj = h5py.File(self.object_path, "r", locking=False) if mean and window else None
        try:
            for c0 in range(a, int(w[1]), step):
                rows = (c0, min(c0 + step, int(w[1])))
                acc = np.zeros((x.shape[0], rows[1] - rows[0], x.shape[2]), dtype=x.dtype)
                for q in range(self.size):  # every rank adds the same terms in the same order
                    lo, hi = overlap(rows, plan.windows[q])
                    if hi <= lo:
                        continue
                    if q == rank:
                        acc[:, lo - c0 : hi - c0] += x[:, lo - a : hi - a]
                    else:
                        qa = int(plan.windows[q][0])
                        acc[:, lo - c0 : hi - c0] += files[q]["x"][:, lo - qa : hi - qa]
                if mean:
                    self._finish_mean(acc, c0, obj, n[rows[0] : rows[1]])
                x[:, rows[0] - a : rows[1] - a] = acc
        finally:
            for f in files.values():
                f.close()
            if obj is not None:
                obj.close()
        if mean and window:
            self._write_rows_in_turn(x, plan)

    def _finish_mean(self, acc: np.ndarray, c0: int, obj: Any, n: np.ndarray) -> None:
        """Turn sums of rows ``c0 + i`` into means over all ranks (old rows from object.h5).

        ``n[i]`` ranks hold row ``c0 + i``; the others count with its value in ``object.h5``.
        """
        partial = row_ranges((n > 0) & (n < self.size)) if obj is not None else []
        if partial:
            shape = obj["object"].shape
            if acc.shape[0] * acc.shape[2] != shape[0] * shape[2]:
                raise RuntimeError(
                    f"{self.mode}: a mean over object windows needs object.h5; only the object "
                    "itself can be averaged on windows"
                )
            for lo, hi in partial:
                k = (self.size - n[lo:hi]).astype(acc.dtype)[None, :, None]
                acc[:, lo:hi] += k * obj["object"][:, c0 + lo : c0 + hi]
        acc /= self.size

    def abort(self, message: str, code: int = 1) -> None:
        """Remove the run's files (every rank is about to be stopped), then abort."""
        if not self.config.keep_files:
            shutil.rmtree(self.dir, ignore_errors=True)
        super().abort(message, code)

    def _cleanup(self) -> None:
        """Remove the run's files at exit (after every rank is done), unless kept."""
        from mpi4py import MPI

        if self.config.keep_files or MPI.Is_finalized():
            return
        if self.size > 1:
            self.comm.Barrier()
        if self.is_root:
            shutil.rmtree(self.dir, ignore_errors=True)
