"""Row geometry of the distributed-object modes: slabs, windows and who sends what (no MPI).

The object ``[S, Ny, Nx]`` is split by rows (Adorym supplement, section G: "distributed
object"). Two row sets matter per rank ``r``:

* its *slab* ``[s_r, s_{r+1})``: an even split of ``[0, Ny)``; the rank stores the
  authoritative copy of those rows (``mpi_distributed_object``) and sums what the other ranks
  send for them;
* its *window* ``W_r = [a_r, b_r)``: the rows its tiles touch, ``a_r = min floor(y) - halo``,
  ``b_r = max floor(y) + M + halo`` (clipped); the engine works on these rows only.

For a raster scan split into contiguous shards the windows are slabs plus ``M + 2 halo`` rows,
so each rank holds ``~ Ny / n + M`` rows: the object share shrinks as ``1/n``.

A tensor that the engine asks to reduce is a *window tensor* when its shape ends in
``(h_r, Nx)`` (or ``(h_r, Nx, 2)``: a real view), ``h_r = b_r - a_r``; it is viewed as
``[L, h_r, C]`` (``L`` leading elements per row, ``C`` values per row) for the exchange.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptyframe.errors import ConfigError

#: Optimizers whose update of an element depends on that element's gradient only: running
#: them on overlapping windows gives every rank the same values as on the whole object.
ELEMENTWISE_OPTIMIZERS = ("gd", "momentum", "adam")
#: Forward models in which each tile sees only its window of the object.
WINDOW_PHYSICS = ("farfield", "multislice", "nearfield")


def even_split(n: int, size: int) -> np.ndarray:
    """Return ``[size, 2]`` (start, stop) of ``range(n)`` cut into ``size`` near-equal parts."""
    b = np.linspace(0, n, size + 1).round().astype(np.int64)
    return np.stack([b[:-1], b[1:]], axis=1)


def overlap(u: Any, v: Any) -> tuple[int, int]:
    """Return the intersection ``(lo, hi)`` of row ranges ``u`` and ``v`` (``hi <= lo``: none)."""
    lo, hi = max(int(u[0]), int(v[0])), min(int(u[1]), int(v[1]))
    return lo, max(lo, hi)


def tile_window(positions_px: np.ndarray, m: int, n_rows: int, halo: int) -> tuple[int, int]:
    """Return the rows ``[a, b)`` that tiles at ``positions_px [B, 2]`` (window ``m``) touch."""
    if len(positions_px) == 0:
        return 0, 0
    y = np.floor(np.asarray(positions_px, dtype=np.float64)[:, 0]).astype(np.int64)
    return max(0, int(y.min()) - halo), min(n_rows, int(y.max()) + m + halo)


@dataclass(frozen=True)
class RowPlan:
    """Windows and slabs of every rank over ``n_rows`` rows."""

    n_rows: int
    windows: np.ndarray  # [size, 2] int64
    slabs: np.ndarray  # [size, 2] int64

    @classmethod
    def full(cls, n_rows: int, size: int) -> RowPlan:
        """Return the plan where every rank holds every row (replicated tensors)."""
        return cls(n_rows, np.tile([0, n_rows], (size, 1)), even_split(n_rows, size))

    @property
    def size(self) -> int:
        return len(self.windows)

    def height(self, rank: int) -> int:
        return int(self.windows[rank, 1] - self.windows[rank, 0])

    def includers(self) -> np.ndarray:
        """Return, per row, how many windows include it ``[n_rows]`` int64."""
        count = np.zeros(self.n_rows + 1, dtype=np.int64)
        for a, b in self.windows:
            count[a] += 1
            count[b] -= 1
        return np.cumsum(count)[:-1]

    def source(self) -> np.ndarray:
        """Return, per row, the lowest rank whose window holds it, else its slab's rank."""
        src = np.full(self.n_rows, -1, dtype=np.int64)
        for r in range(self.size - 1, -1, -1):
            a, b = self.windows[r]
            src[a:b] = r
        for r, (a, b) in enumerate(self.slabs):
            part = src[a:b]
            part[part < 0] = r
        return src


def window_view(tensor: torch.Tensor, height: int, width: int) -> np.ndarray | None:
    """Return ``tensor`` as a NumPy view ``[L, height, C]`` if it is a window tensor, else None."""
    if tensor.device.type != "cpu" or tensor.dtype == torch.bool:
        return None
    t = torch.view_as_real(tensor) if tensor.is_complex() else tensor
    shape = tuple(t.shape)
    if tensor.is_complex():
        row_axis = t.dim() - 3
    elif len(shape) >= 2 and shape[-2:] == (height, width):
        row_axis = t.dim() - 2
    elif len(shape) >= 3 and shape[-3:] == (height, width, 2):
        row_axis = t.dim() - 3
    else:
        return None
    if row_axis < 0 or shape[row_axis : row_axis + 2] != (height, width):
        return None
    if not t.is_contiguous():
        return None
    lead = int(np.prod(shape[:row_axis], dtype=np.int64))
    return t.detach().numpy().reshape(lead, height, -1)


def _field(obj: Any, key: str, default: Any = None) -> Any:
    """Return ``obj.key`` or ``obj[key]`` (configs arrive as dataclasses or mappings)."""
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _name(obj: Any, default: str) -> str:
    if obj is None:
        return default
    return str(obj) if isinstance(obj, str) else str(_field(obj, "name", default))


def check_window_mode(run: Any, mode: str, registry: Any = None) -> None:
    """Raise ``ConfigError`` if the run's engine cannot work on a window of the object.

    Exact on windows: ePIE/rPIE without probe centring (centring rolls the whole object), and
    autodiff with a single-angle scanning model, no regularizers, no shrink-wrap and an
    element-wise object optimizer. Everything else needs the whole object on every rank.
    Without a run config (the distribution used as a library) nothing is checked.
    """
    if run is None:
        return
    engine = _field(run, "engine")
    physics = _field(run, "physics")
    if registry is not None:
        engine = registry.config("engine", engine or "epie")
        physics = registry.config("forward_model", physics or "farfield")
    name = _name(engine, "epie")
    fix = "keep the whole object on every rank with distribution.windows=false"
    if name in ("epie", "rpie"):
        if _field(engine, "center_probe", True):
            raise ConfigError(
                f"{mode} on object windows cannot roll the object to centre the probe: set "
                f"engine.center_probe=false, or {fix}"
            )
        return
    if name != "autodiff":
        raise ConfigError(
            f"{mode} on object windows supports epie, rpie and autodiff, not {name}; " + fix
        )
    if _field(run, "regularizers"):
        raise ConfigError(f"{mode} on object windows cannot evaluate regularizers: {fix}")
    opt_name = _name(_field(_field(engine, "optimizers"), "object"), "adam")
    if opt_name not in ELEMENTWISE_OPTIMIZERS:
        raise ConfigError(
            f"{mode} on object windows needs an element-wise object optimizer "
            f"({', '.join(ELEMENTWISE_OPTIMIZERS)}), not {opt_name}: {fix}"
        )
    if int(_field(physics, "shrinkwrap_every", 0) or 0) > 0:
        raise ConfigError(f"{mode} on object windows cannot shrink-wrap the support: {fix}")
    pname = _name(physics, "farfield")
    if pname not in WINDOW_PHYSICS:
        raise ConfigError(
            f"{mode} on object windows supports physics {', '.join(WINDOW_PHYSICS)} (scanned "
            f"tiles), not {pname}: {fix}"
        )
