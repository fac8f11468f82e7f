"""Run a reconstruction with the object split into windows (the runner's loop, lean).

``ptyframe.runner.run`` builds the whole state on every rank, clones it every epoch and
writes it from the root, so through the runner the object modes reduce like data-parallel
without saving memory. ``run_windowed`` is the same composition with the two calls the
runner lacks (``Distribution.localize_state`` before the engine is prepared,
``Distribution.gather_state`` at the end), and nothing else: no checkpoints, metrics or
files. Tests and ``benchmarks/mpi_memory.py`` use it; with ``mpi_data_parallel`` (or
``single``) both calls are identities and it is the plain data-parallel run.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.measurements import Measurements
from ptyframe.engines.base import EpochReport
from ptyframe.initial import initial_state
from ptyframe.registry import BuildContext, Registry
from ptyframe.runner import resolve_device, typed_config
from ptyframe.state import ReconstructionState


@dataclass
class WindowedResult:
    """What ``run_windowed`` produced: the whole state on the root (None elsewhere)."""

    state: ReconstructionState | None
    reports: list[EpochReport]
    rows: tuple[int, int]
    local_object_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def data_error(self) -> list[float]:
        return [r.data_error for r in self.reports]


def run_windowed(
    cfg: Any,
    registry: Registry | None = None,
    dataset: PtychoDataset | None = None,
    hooks: dict[str, Callable[..., None]] | None = None,
) -> WindowedResult:
    """Run ``cfg`` with ``localize_state``/``gather_state`` around the epochs.

    ``hooks`` (for ``benchmarks/mpi_memory.py``) are called with the distribution: ``data``
    once this rank's patterns are loaded (no object yet), ``prepared`` once the engine is
    prepared on the local state (the whole starting state is dropped by then), ``done`` after
    the last epoch (before ``gather_state``).
    """
    if registry is None:
        from ptyframe.plugins import default_registry

        registry = default_registry()
    cfg = typed_config(cfg)
    device = resolve_device(cfg.device)
    ctx = BuildContext(registry, device, cfg.dtype, int(cfg.seed), run=cfg)
    dist = registry.build("distribution", cfg.distribution or "single", ctx)
    try:
        return _run(cfg, registry, ctx, dist, device, dataset, hooks or {})
    except Exception as exc:
        if dist.size > 1:
            dist.abort(str(exc) or type(exc).__name__)
        raise


def _run(
    cfg: Any,
    registry: Registry,
    ctx: BuildContext,
    dist: Any,
    device: str,
    dataset: PtychoDataset | None,
    hooks: dict[str, Callable[..., None]],
) -> WindowedResult:
    engine = registry.build("engine", cfg.engine or "epie", ctx)
    if dataset is None:
        dataset = registry.build("dataset", cfg.data, ctx)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    elif getattr(engine, "prefers_single_thread", False):
        torch.set_num_threads(1)
    torch.manual_seed(int(cfg.seed))
    np.random.seed(int(cfg.seed) % 2**32)
    indices = dist.shard_tiles(np.asarray(dataset.geometry.positions_px))
    rdt = torch.float64 if cfg.dtype == "complex128" else torch.float32
    meas = Measurements.from_dataset(dataset, 0, indices, device, rdt)
    photons, n_local = dist.sum_scalars(meas.mean_intensity_sum() * meas.n, float(meas.n))
    if "data" in hooks:
        hooks["data"](dist)
    state = initial_state(
        cfg.init,
        dataset,
        meas,
        dtype=cfg.dtype,
        device=device,
        photons_per_pattern=photons / max(n_local, 1.0),
    )
    state = engine.init_state(state, dataset)
    state = dist.localize_state(state, indices)
    gc.collect()
    plan = getattr(dist, "plan", None)
    rows = (0, int(state.object.shape[-2]))
    if plan is not None:
        rows = tuple(int(v) for v in plan.windows[dist.rank])  # type: ignore[assignment]
    engine.prepare(meas, state, dist, int(cfg.seed))
    if "prepared" in hooks:
        hooks["prepared"](dist)
    reports = [engine.step(epoch) for epoch in range(engine.epochs)]
    if "done" in hooks:
        hooks["done"](dist)
    local_bytes = state.object.numel() * state.object.element_size()
    full = dist.gather_state(state)
    return WindowedResult(full, reports, rows, local_bytes)  # type: ignore[arg-type]
