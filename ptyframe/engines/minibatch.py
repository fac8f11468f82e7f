"""Share what the minibatch engines need: batch plans and batched exit waves.

Minibatch engines (``minibatch_pie``, ``lsqml``) update object and probe once per group of
positions, all computed from the same ``O`` and ``P``, with batched FFTs and the batched
projection ``ptyframe.physics.projection``. Three ways to group positions (Odstrcil, Menzel &
Guizar-Sicairos, Opt. Express 26, 3108 (2018), sec. 4, "compact" and "sparse" groups):

``random``
    a fresh random partition every epoch;
``compact``
    fixed spatial clusters of about ``batch_size`` neighbouring positions (k-means on the
    positions, seeded), visited in a random order;
``sparse``
    fixed groups of mutually non-overlapping positions (no two windows of a group share a
    pixel), at most ``batch_size`` each, formed greedily in a seeded random order, visited in
    a random order. Within such a group the object update of one position does not touch any
    other, so the group's object step is the sequential one.
"""

from __future__ import annotations

import math
from contextlib import closing
from typing import Any, ClassVar

import numpy as np
import torch

from ptyframe.engines.base import Capabilities
from ptyframe.engines.config import MinibatchConfig
from ptyframe.engines.frame import FastEngine
from ptyframe.engines.minibatch_delta import batched_delta
from ptyframe.engines.rules import mpie_momentum
from ptyframe.engines.scan import ScanWindows
from ptyframe.errors import ConfigError
from ptyframe.physics.patches import extract_patches, scatter_add_patches

BATCHING = ("random", "compact", "sparse")


def check_batching(owner: str, batching: str, batch_size: int) -> None:
    """Raise ``ConfigError`` for an unknown grouping or a batch size below 1."""
    if batching not in BATCHING:
        raise ConfigError(f"{owner}.batching = {batching!r}; choose one of {', '.join(BATCHING)}")
    if int(batch_size) < 1:
        raise ConfigError(f"{owner}.batch_size = {batch_size} must be >= 1")


def compact_groups(positions_px: np.ndarray, batch_size: int, seed: int) -> list[np.ndarray]:
    """Return spatial clusters (k-means, 20 Lloyd steps) of about ``batch_size`` positions."""
    n = len(positions_px)
    k = max(1, math.ceil(n / batch_size))
    rng = np.random.default_rng([seed, 1])
    centres = positions_px[rng.choice(n, k, replace=False)].astype(np.float64)
    label = np.zeros(n, dtype=np.int64)
    for _ in range(20):
        d2 = ((positions_px[:, None, :] - centres[None]) ** 2).sum(-1)
        label = d2.argmin(1)
        for c in range(k):
            if np.any(label == c):
                centres[c] = positions_px[label == c].mean(0)
    return [np.flatnonzero(label == c) for c in range(k) if np.any(label == c)]


def sparse_groups(
    positions_px: np.ndarray, window: tuple[int, int], batch_size: int, seed: int
) -> list[np.ndarray]:
    """Return greedy groups of mutually non-overlapping windows, at most ``batch_size`` each."""
    corners = np.floor(positions_px).astype(np.int64)
    m, n = window
    groups: list[list[int]] = []
    for j in np.random.default_rng([seed, 2]).permutation(len(corners)):
        for g in groups:
            if len(g) < batch_size:
                d = np.abs(corners[g] - corners[j])
                if np.all((d[:, 0] >= m) | (d[:, 1] >= n)):
                    g.append(int(j))
                    break
        else:
            groups.append([int(j)])
    return [np.asarray(sorted(g), dtype=np.int64) for g in groups]


class BatchPlan:
    """The groups of one engine: fixed (compact, sparse) or drawn per epoch (random).

    Groups never cross a block of the data (``block_patterns`` consecutive patterns, the
    unit a streamed run holds; ``ptyframe.data.patterns``): each block is grouped on its own
    and an epoch visits the blocks in scan order, the groups of each in a random order, all
    drawn from one generator seeded by ``(seed, epoch)``. With one block (the default) that
    is one grouping of the whole scan.
    """

    def __init__(
        self,
        positions_px: np.ndarray,
        window: tuple[int, int],
        batching: str,
        batch_size: int,
        seed: int,
        block_patterns: int | None = None,
    ) -> None:
        self.n = len(positions_px)
        self.batching, self.batch_size, self.seed = batching, int(batch_size), int(seed)
        block = max(1, int(block_patterns or self.n))
        #: ``(lo, hi)`` of each block, in scan order.
        self.blocks = [(lo, min(lo + block, self.n)) for lo in range(0, self.n, block)]
        #: Per block, its fixed groups (local indices of the whole scan), or None (random).
        self.fixed: list[list[np.ndarray]] | None = None
        if batching in ("compact", "sparse"):
            self.fixed = [
                [lo + g for g in self._groups(batching, positions_px[lo:hi], window)]
                for lo, hi in self.blocks
            ]

    def _groups(
        self, batching: str, positions_px: np.ndarray, window: tuple[int, int]
    ) -> list[np.ndarray]:
        if batching == "compact":
            return compact_groups(positions_px, self.batch_size, self.seed)
        return sparse_groups(positions_px, window, self.batch_size, self.seed)

    def epoch_blocks(self, epoch: int) -> list[list[np.ndarray]]:
        """Return the groups of ``epoch``, block by block, in their visiting order."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        out = []
        for b, (lo, hi) in enumerate(self.blocks):
            if self.fixed is None:
                order = lo + rng.permutation(hi - lo)
                bs = self.batch_size
                out.append([order[i : i + bs] for i in range(0, hi - lo, bs)])
            else:
                fixed = self.fixed[b]
                out.append([fixed[i] for i in rng.permutation(len(fixed))])
        return out

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """Return the groups of ``epoch`` in their visiting order (depends on seed, epoch)."""
        return [g for block in self.epoch_blocks(epoch) for g in block]


class BatchedWaves:
    """Exit waves of groups of positions: ``psi_b = S_b(O) T_f_b P`` ``[B, K, M, N]``.

    The windows come from the frame's ``ScanWindows`` (``ptyframe.engines.scan``), so a
    correction that moves the positions moves these too.
    """

    def __init__(self, scan: ScanWindows) -> None:
        self.scan = scan

    @property
    def window(self) -> tuple[int, int]:
        return self.scan.window

    @property
    def shifted(self) -> bool:
        return self.scan.shifted

    def patches(self, obj: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Return the object windows ``[B, M, N]`` of positions ``idx``."""
        return gather_windows(obj, self.corners_of(idx, obj.device), self.window)

    def ramps(self, idx: torch.Tensor, like: torch.Tensor) -> torch.Tensor | None:
        """Return the shift ramps ``r_f_b`` ``[B, 1, M, N]`` of ``idx`` (None: no shifts)."""
        if not self.shifted:
            return None
        ry, rx = self.scan.ramps(like.dtype)
        i = idx.to(ry.device)
        return (ry[i][:, :, None] * rx[i][:, None, :]).unsqueeze(1)

    def probes(
        self, probe: torch.Tensor, idx: torch.Tensor, ramps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the shifted probes ``T_f_b P`` ``[B, K, M, N]`` of positions ``idx``.

        ``ramps``: ``self.ramps(idx, probe)`` when the caller has them already.
        """
        if not self.shifted:
            return probe.unsqueeze(0).expand(len(idx), *probe.shape)
        if ramps is None:
            ramps = self.ramps(idx, probe)
        return torch.fft.ifft2(torch.fft.fft2(probe).unsqueeze(0) * ramps)

    def shift_back_sum(
        self, x: torch.Tensor, idx: torch.Tensor, ramps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return ``sum_b T_-f_b x_b`` ``[K, M, N]`` for ``x`` ``[B, K, M, N]``.

        ``T_-f = F^-1 conj(r_f) F`` is linear, so the sum is taken in Fourier space:
        ``F^-1[sum_b conj(r_f_b) F(x_b)]``, one inverse FFT in place of ``B``.
        """
        if not self.shifted:
            return x.sum(0)
        if ramps is None:
            ramps = self.ramps(idx, x)
        assert ramps is not None
        spec = torch.fft.fft2(x).mul_(ramps.conj())
        return torch.fft.ifft2(spec.sum(0))

    def box(self, idx: torch.Tensor) -> tuple[int, int, int, int]:
        """Return ``(y0, y1, x0, x1)``: the smallest object region holding the windows ``idx``."""
        return self.scan.box(idx)

    def corners_of(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Return the integer corners ``[B, 2]`` of positions ``idx`` on ``device``."""
        return self.scan.corners[idx.cpu()].to(device)


def gather_windows(
    obj: torch.Tensor, corners: torch.Tensor, window: tuple[int, int]
) -> torch.Tensor:
    """Return the windows ``[B, M, N]`` of ``obj`` ``[H, W]`` at integer ``corners`` ``[B, 2]``.

    On a CPU one slice copy per window (faster there than the flat-index gather of
    ``ptyframe.physics.patches.extract_patches``); elsewhere that gather (one kernel). Same
    values either way.
    """
    if obj.device.type != "cpu":
        return extract_patches(obj, corners, window)
    m, n = window
    return torch.stack([obj[y : y + m, x : x + n] for y, x in corners.tolist()])


def scatter_windows(target: torch.Tensor, patches: torch.Tensor, corners: torch.Tensor) -> None:
    """Add windows ``patches`` ``[B, M, N]`` into ``target`` ``[H, W]`` in place (overlaps sum).

    On a CPU one in-place slice addition per window, in order (faster there than
    ``index_add_``); elsewhere ``ptyframe.physics.patches.scatter_add_patches``.
    """
    if target.device.type != "cpu":
        scatter_add_patches(target, patches, corners)
        return
    m, n = patches.shape[-2:]
    for b, (y, x) in enumerate(corners.tolist()):
        target[y : y + m, x : x + n] += patches[b]


def mode_sum(x: torch.Tensor) -> torch.Tensor:
    """Return ``sum_k x[:, k]`` of ``[B, K, ...]``; a view for one mode (``sum(1)`` copies)."""
    return x[:, 0] if x.shape[1] == 1 else x.sum(1)


class MinibatchEngine(FastEngine):
    """Base of the minibatch engines: the groups, their loop and the epoch's momentum.

    Subclasses implement ``update_batch(idx, update_probe) -> error numerator``; the frame
    (``ptyframe.engines.frame``) does the rest of the epoch. The numba backend runs the
    detector step of each group as fused kernels (``minibatch_delta``); the transforms are
    ``torch.fft`` on either backend.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        positions=True, prior="after_epoch", backends=("torch", "numba"), streams=True
    )
    config: MinibatchConfig

    def setup(self) -> None:
        """Group the positions (``BatchPlan``) and wrap the scan's windows."""
        assert self.state is not None
        self.waves = BatchedWaves(self.scan)
        self.group(self.scan.positions_px.numpy())
        self._start: dict[str, torch.Tensor] = {}
        self._velocity: dict[str, torch.Tensor] = {}

    def group(self, positions_px: np.ndarray) -> None:
        """Group the positions ``[n, 2]`` (``BatchPlan``): the recorded ones, also when a
        resumed run starts from refined positions."""
        assert self.state is not None
        cfg = self.config
        self.plan = BatchPlan(
            positions_px,
            self.state.window,
            str(cfg.batching),
            int(cfg.batch_size),
            self.seed,
            self.block_patterns,
        )

    def update_batch(self, idx: torch.Tensor, update_probe: bool) -> float:
        """Update object and probe from the positions ``idx``; return their error numerator."""
        raise NotImplementedError

    def detector_step(
        self, wave: torch.Tensor, amps: torch.Tensor, valid: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(Psi' - Psi, e)`` of a group on the resolved backend (``minibatch_delta``)."""
        return batched_delta(wave, amps, valid, fused=self.backend.fused)

    def _epoch_momentum(self, gain: float, friction: float, update_probe: bool) -> None:
        """Momentum on the epoch's change: ``v <- eta v + (x - x_start)``, ``x += gain v``.

        The mPIE momentum (Maiden, Johnson & Li 2017, eqs. 8-9; ``rules.mpie_momentum``)
        with ``T`` = one epoch.
        """
        assert self.state is not None
        for key, x in (("object", self.state.object), ("probe", self.state.probe)):
            if key == "probe" and not update_probe:
                self._start[key].copy_(x)
                continue
            mpie_momentum(x, self._start[key], self._velocity[key], friction, gain)

    def data(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the measured amplitudes and the mask (or None) of positions ``idx``."""
        meas, state = self.measurements, self.state
        assert meas is not None and state is not None
        return meas.batch(idx, state.object.device)

    def sweep(self, epoch: int, update_probe: bool) -> float:
        """Run every group of ``epoch`` once, then the epoch's momentum (``momentum > 0``).

        The groups of a block run while the data holds that block (``blocks()``), so a
        streamed source serves ``batch`` from memory.
        """
        assert self.state is not None and self.measurements is not None
        cfg = self.config
        err = 0.0
        gain = float(cfg.momentum)
        if gain > 0 and not self._start:
            self._start = {"object": self.state.object.clone(), "probe": self.state.probe.clone()}
            self._velocity = {k: torch.zeros_like(v) for k, v in self._start.items()}
        groups = self.plan.epoch_blocks(epoch)
        with closing(self.measurements.blocks()) as blocks:  # streamed: read one ahead
            for _, block_groups in zip(blocks, groups, strict=True):  # while the block is in
                for group in block_groups:  # memory, its groups read their patterns from it
                    err += self.update_batch(torch.as_tensor(group), update_probe)
        if gain > 0:
            self._epoch_momentum(gain, float(cfg.friction), update_probe)
        return err

    def on_roll(self, sy: int, sx: int) -> None:
        """The momentum buffers follow the probe-centring roll."""
        for t in (*self._start.values(), *self._velocity.values()):
            t.copy_(torch.roll(t, (sy, sx), dims=(-2, -1)))

    def state_dict(self) -> dict[str, Any]:
        """Return the momentum's start point and velocity (and the frame's state)."""
        out = super().state_dict()
        if self._start:
            out["momentum"] = {
                "start": {k: v.clone() for k, v in self._start.items()},
                "velocity": {k: v.clone() for k, v in self._velocity.items()},
            }
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (after ``prepare``)."""
        super().load_state_dict(state)
        if self.hooks is not None and self.hooks.positions is not None:
            self.group(self.hooks.positions.nominal_px)  # the uninterrupted run's groups
        saved = state.get("momentum")
        if saved and self.state is not None:
            device = self.state.object.device
            self._start = {k: v.to(device) for k, v in saved["start"].items()}
            self._velocity = {k: v.to(device) for k, v in saved["velocity"].items()}
