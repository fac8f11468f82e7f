"""Define a ``Correction``: one nuisance of the experiment, owned by the engine frame.

The frame (``ptyframe.engines.frame``, issue #27) holds a list of corrections and calls, for
every fast engine alike::

    prepare(ctx)                     once, after the state exists
    begin_epoch(epoch, ctx)          before the sweep
    ... the sweep calls the per-position / per-batch hooks of each correction ...
    allreduce(distribution)          with several ranks, before end_epoch: combine the
                                     per-position statistics of the ranks
    end_epoch(epoch, ctx) -> dict    after rank averaging: apply what was accumulated;
                                     return scalars for the history
    on_roll(sy, sx)                  when the frame rolls probe and object to centre the probe
    state_dict() / load_state_dict() checkpoint and resume, bit for bit
    results() -> dict[str, array]    datasets for recon.h5

``CorrectionContext`` is what a correction reads from the frame: the nominal positions, the
window, the dtype and device of the state, the probe (shared modes ``[K, M, N]``, the frame's
own tensor: OPR writes its mean probe into mode 0 after each sweep), the object frame's
shape (positions are kept where their windows fit) and, for the coarse map step of the
positions (``corrections.coarse``), the state's object (which it resamples in place) and the
run's pattern data. The frame's
own context type only needs these attributes (a ``Protocol``), so the corrections can be built
and tested without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class FrameView(Protocol):
    """The attributes of the frame's context that a correction reads."""

    positions_px: torch.Tensor  # [N, 2] float64, the recorded (nominal) positions
    window: tuple[int, int]  # (M, N) probe window
    dtype: torch.dtype  # complex dtype of the object and probe
    device: torch.device
    probe: torch.Tensor  # [K, M, N] the shared probe modes (K incoherent modes)
    object_shape: tuple[int, int] | None  # (H, W) of the object frame


@dataclass
class CorrectionContext:
    """A plain ``FrameView`` (tests, and callers without the frame)."""

    positions_px: torch.Tensor
    window: tuple[int, int]
    dtype: torch.dtype
    device: torch.device
    probe: torch.Tensor
    object_shape: tuple[int, int] | None = None
    #: the state's object ``[S, H, W]`` (the frame's own tensor; the coarse position steps
    #: read it and may resample it in place) and the run's pattern data (None: not given)
    object: torch.Tensor | None = None
    patterns: Any = None

    @classmethod
    def of(
        cls, positions_px: Any, probe: torch.Tensor, object_shape: tuple[int, int] | None = None
    ) -> CorrectionContext:
        """Build the context of ``positions_px`` ``[N, 2]`` and ``probe`` ``[K, M, N]``."""
        pos = torch.as_tensor(np.asarray(positions_px, dtype=np.float64))
        window = (int(probe.shape[-2]), int(probe.shape[-1]))
        return cls(pos, window, probe.dtype, probe.device, probe, object_shape)


@runtime_checkable
class Correction(Protocol):
    """One nuisance correction (module docstring)."""

    name: str

    def prepare(self, ctx: FrameView) -> None: ...

    def begin_epoch(self, epoch: int, ctx: FrameView) -> None: ...

    def allreduce(self, distribution: Any) -> None: ...

    def end_epoch(self, epoch: int, ctx: FrameView) -> dict[str, float]: ...

    def on_roll(self, sy: int, sx: int) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def results(self) -> dict[str, np.ndarray]: ...


def n_positions(ctx: FrameView) -> int:
    """Return the number of positions of the frame's scan."""
    return int(ctx.positions_px.shape[0])
