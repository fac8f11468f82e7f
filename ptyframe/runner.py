"""Compose a run from its config (only here and in ``callbacks.core``) and drive it.

``run(cfg)`` builds the distribution, the engine and the dataset from the registry, checks
they fit, loads this rank's measurements, makes the starting state and prepares the engine;
``ptyframe.loop.run_loop`` then drives it with the callbacks (``ptyframe.callbacks``: truth
metrics, divergence guard, history, progress, checkpoint/resume, signals, convergence
warnings, outputs, and any the config or the caller adds). Every check that can fail on user
input happens before the first epoch, and nothing is written before then.

Distribution: each rank reads its tiles (``Distribution.shard_tiles``), then
``Distribution.localize_state`` may cut the state down to the object rows those tiles touch
(the distributed-object modes); ``RunContext.whole`` gathers the whole state on the root
(collective) at most once per epoch, where metrics, checkpoints and outputs need it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ptyframe import compose
from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.callbacks.checkpoint import CHECKPOINT_FILE
from ptyframe.callbacks.core import all_callbacks
from ptyframe.config import ReconstructConfig
from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.measurements import Measurements
from ptyframe.engines.base import Engine
from ptyframe.errors import (
    ConfigError,
    DivergenceError,
    InputLostError,
    OutputExistsError,
    PtyframeError,
    find_ptyframe_error,
)
from ptyframe.initial import initial_state
from ptyframe.io.checkpoint import fingerprint
from ptyframe.io.results import RESULT_FILE, History
from ptyframe.loop import end, ordered, run_loop
from ptyframe.metrics.truth import TruthMetrics
from ptyframe.registry import BuildContext, Registry
from ptyframe.state import ReconstructionState

log = logging.getLogger("ptyframe")

__all__ = ["CHECKPOINT_FILE", "RESULT_FILE", "RunResult", "reconstruct", "run", "typed_config"]


@dataclass
class RunResult:
    """What a run produced. ``status`` is ``finished``, ``interrupted`` or ``diverged``."""

    state: ReconstructionState
    history: History
    status: str
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    #: the run's extra ``recon.h5`` attributes (``follow_ended``, noise floor, ...)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def object(self) -> np.ndarray:
        return self.state.object.detach().cpu().numpy()

    @property
    def probe(self) -> np.ndarray:
        return self.state.probe.detach().cpu().numpy()


# ---------------------------------------------------------------------- config handling
def typed_config(cfg: Any) -> ReconstructConfig:
    """Return ``cfg`` (a DictConfig from Hydra, a mapping or the dataclass) as the dataclass."""
    if isinstance(cfg, ReconstructConfig):
        return cfg
    from omegaconf import DictConfig, OmegaConf

    try:
        if isinstance(cfg, DictConfig):
            obj = OmegaConf.to_object(cfg)
        else:
            obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ReconstructConfig), cfg))
    except Exception as exc:  # OmegaConf wraps errors from __post_init__
        inner = find_ptyframe_error(exc)
        if inner is not None:
            raise inner from None
        from omegaconf.errors import MissingMandatoryValue

        if isinstance(exc, MissingMandatoryValue):
            key = getattr(exc, "full_key", "") or "a value"
            hint = (
                " (make a demo file with `ptyframe simulate out=demo.h5`)"
                if key == "data.path"
                else ""
            )
            raise ConfigError(f"{key} is required: give `{key}=...`{hint}") from None
        raise ConfigError(f"invalid configuration: {exc}") from None
    if isinstance(obj, dict):
        obj = ReconstructConfig(**{str(k): v for k, v in obj.items()})
    if not isinstance(obj, ReconstructConfig):
        raise ConfigError(f"invalid configuration: a {type(obj).__name__}, not a run config")
    return obj


def config_yaml(cfg: ReconstructConfig) -> str:
    """Return the resolved config as YAML (component configs with their ``name``)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def resolve_device(device: str) -> str:
    """Map ``auto`` to ``cuda`` when available; reject CUDA when it is not."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device = {device!r} but no CUDA device is available; use device=cpu")
    return device


# ---------------------------------------------------------------------- the run
def run(
    cfg: Any,
    registry: Registry | None = None,
    out_dir: str | Path | None = None,
    dataset: PtychoDataset | None = None,
    write: bool = True,
    callbacks: Sequence[Callback] = (),
) -> RunResult:
    """Run the reconstruction ``cfg`` describes; write outputs into ``out_dir`` if ``write``.

    ``out_dir`` defaults to ``cfg.output.dir`` or the current directory (Hydra's run dir).
    ``callbacks`` are added to the run's own (``ptyframe.callbacks``): e.g.
    ``benchmarks/mpi_memory.py`` measures memory in ``setup`` (data loaded, no object yet),
    ``on_prepared`` and ``on_run_end``.
    """
    if registry is None:
        from ptyframe.plugins import default_registry

        registry = default_registry()
    cfg = typed_config(cfg)
    ctx = BuildContext(
        registry,
        resolve_device(cfg.device),
        cfg.dtype,
        int(cfg.seed),
        deterministic=bool(cfg.deterministic),
    )
    dist = compose.build_distribution(cfg, registry, ctx)
    try:
        return _run(cfg, registry, ctx, dist, out_dir, dataset, write, callbacks)
    except (Exception, KeyboardInterrupt) as exc:
        if dist.size > 1 and not isinstance(exc, KeyboardInterrupt):
            dist.abort(str(exc) or type(exc).__name__)  # no rank may hang in a collective
        raise


def _run(
    cfg: ReconstructConfig,
    registry: Registry,
    ctx: BuildContext,
    dist: Any,
    out_dir: str | Path | None,
    dataset: PtychoDataset | None,
    write: bool,
    extra: Sequence[Callback] = (),
) -> RunResult:
    """Compose the run (``_compose``), prepare it, run the loop, return the result."""
    run = _compose(cfg, registry, ctx, dist, out_dir, dataset, write)
    if cfg.output.skip_done and (run.out_dir / RESULT_FILE).exists():
        done = _finished_result(run.out_dir / RESULT_FILE, run.fingerprint)
        if done is not None:
            log.info("skipping: %s already holds this finished run", run.out_dir / RESULT_FILE)
            return done
    _check_output(run)
    callbacks = all_callbacks(cfg, registry, ctx, extra)
    try:
        _prepare(run, callbacks)
    except BaseException:
        end(run, callbacks, "failed")  # signal handlers back, the bar closed
        raise
    try:
        run_loop(run, callbacks)
    except InputLostError as exc:
        where = run.out_dir / RESULT_FILE if run.writer else "(not written)"
        raise type(exc)(
            f"{exc}. The last good state (epoch {len(run.history.epochs)}) is saved in {where}; "
            "resume=true continues once the file is readable"
        ) from None
    except DivergenceError as exc:
        where = run.out_dir / RESULT_FILE if run.writer else "(not written)"
        raise DivergenceError(
            f"{exc}. The last good state (epoch {len(run.history.epochs)}) is saved in {where}"
        ) from None
    whole = run.whole()  # the outputs' gather, cached: not repeated
    final = {k: run.history.last(k) for k in run.history.columns}
    log.info(
        "done: %d epochs, data error %.4g", len(run.history.epochs), final.get("data_error", 0)
    )
    state = whole if whole is not None else run.state  # non-root ranks of a windowed run
    assert state is not None
    out = run.out_dir if run.writer else None
    return RunResult(state, run.history, run.status, out, run.files, final, dict(run.attrs))


def _compose(
    cfg: ReconstructConfig,
    registry: Registry,
    ctx: BuildContext,
    dist: Any,
    out_dir: str | Path | None,
    dataset: PtychoDataset | None,
    write: bool,
) -> RunContext:
    """Build the engine and the dataset, check they fit, and return the run's context."""
    engine: Engine = compose.build_engine(cfg, registry, ctx)
    if dataset is None:
        if cfg.data is None:
            raise ConfigError("no data source: give `data.path=FILE.h5` or `data=simulated`")
        dataset = registry.build("dataset", compose.data_config(cfg, registry), ctx)
    if dataset.n_angles > 1 and not engine.wants_all_angles:
        raise ConfigError(
            f"the dataset has {dataset.n_angles} angles but engine {engine.name!r} "
            "reconstructs a single angle; use engine=autodiff with a tomography forward model"
        )
    out = Path(out_dir if out_dir is not None else (cfg.output.dir or ".")).resolve()
    out = Path(str(dist.broadcast_object(str(out))))  # every rank uses rank 0's directory
    yaml_text = config_yaml(cfg)
    return RunContext(
        cfg=cfg,
        registry=registry,
        context=ctx,
        distribution=dist,
        engine=engine,
        dataset=dataset,
        out_dir=out,
        write=write,
        config_yaml=yaml_text,
        fingerprint=fingerprint(yaml_text),
        end_epoch=engine.epochs,
    )


def _check_output(run: RunContext) -> None:
    """Refuse to overwrite a finished result unless asked (before any work)."""
    cfg, path = run.cfg, run.out_dir / RESULT_FILE
    if run.writer and path.exists() and not (cfg.output.overwrite or cfg.resume):
        raise OutputExistsError(
            f"{path} already exists; choose another output.dir, set "
            "output.overwrite=true, or resume=true to continue an interrupted run"
        )


def _prepare(run: RunContext, callbacks: Sequence[Callback]) -> None:
    """Load this rank's measurements, make the starting state, prepare the engine.

    Calls the callbacks' ``setup``, ``on_run_start`` (where a resume replaces the state) and
    ``on_prepared`` hooks in order. Object-splitting distributions keep only the rows this
    rank's tiles touch from ``localize_state`` on.
    """
    cfg, engine, dist, ds = run.cfg, run.engine, run.distribution, run.dataset
    cbs = ordered(callbacks)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    elif engine.prefers_single_thread:
        torch.set_num_threads(1)
    torch.manual_seed(int(cfg.seed))
    np.random.seed(int(cfg.seed) % 2**32)
    indices = dist.shard_tiles(np.asarray(ds.geometry.positions_px))
    plan = _memory_plan(run, len(indices))  # before any pattern is read; refuses what cannot fit
    run.measurements = [
        _pattern_data(run, a, indices, plan)
        for a in range(ds.n_angles if engine.wants_all_angles else 1)
    ]
    first = run.measurements[0]
    photons, n_local = dist.sum_scalars(first.mean_intensity_sum() * first.n, float(first.n))
    for cb in cbs:
        cb.setup(run)
    photons_per_pattern = photons / max(n_local, 1.0)
    device = run.context.device
    state = initial_state(
        cfg.init, ds, first, dtype=cfg.dtype, device=device, photons_per_pattern=photons_per_pattern
    )
    run.state = engine.init_state(state, ds)
    run.truth = TruthMetrics(list(cfg.metrics.names), run.registry, run.context, ds)
    for cb in cbs:
        cb.on_run_start(run)
    run.state = dist.localize_state(run.state, indices)
    run.state_changed()
    if engine.wants_all_angles:
        engine.prepare_angles(run.measurements, run.state, dist, int(cfg.seed))
    else:
        engine.prepare(first, run.state, dist, int(cfg.seed))
    for cb in cbs:
        cb.on_prepared(run)


def _pattern_data(run: RunContext, angle: int, indices: np.ndarray, plan: Any) -> Any:
    """Return the patterns of ``angle`` as the memory plan holds them (``PatternData``).

    Streamed: a ``StreamedSource`` (blocks of ``plan.block``); in memory as the stored
    counts (an engine that streams, data stored narrower than the run's real dtype): a
    ``MemorySource``; else float amplitudes (``Measurements``), in the blocks of
    ``data.block_patterns`` (one block by default).
    """
    from ptyframe.data.patterns import MemorySource
    from ptyframe.data.stream import open_source

    cfg, ds = run.cfg, run.dataset
    rdt = torch.float64 if cfg.dtype == "complex128" else torch.float32
    block = _data_option(run, "block_patterns", None)
    if plan.stream:
        return open_source(
            ds, angle, indices, stream=True, block_patterns=plan.block, real_dtype=rdt
        )
    if plan.counts:
        return MemorySource.load(ds, angle, indices, block, rdt)
    where = "cpu" if cfg.patterns_on_host else run.context.device  # on the host: sent per batch
    return Measurements.from_dataset(ds, angle, indices, where, rdt, block_patterns=block)


def _data_option(run: RunContext, key: str, default: Any) -> Any:
    """Return the data config's ``key`` (its typed dataclass, also for a mapping given in
    code), or ``default`` for a data source without it (a dataset given in code)."""
    data = run.cfg.data
    if data is None:
        return default
    return getattr(run.registry.config("dataset", data), key, default)


def _memory_plan(run: RunContext, n_local: int) -> Any:
    """Estimate the run's memory, log it, and refuse a run that cannot fit (before any work).

    ``ptyframe.data.memory``: with ``data.stream=auto`` a run that does not fit in memory is
    streamed when its engine streams (``Capabilities.streams``), else it stops with one error
    line naming the fixes (``InsufficientMemoryError``, exit 2). Every rank decides on its own
    share; the runner aborts all ranks when one refuses. An engine that streams holds the
    counts in their stored dtype where that is narrower than the run's real dtype (on the
    host: a CPU run, or ``patterns_on_host``). A followed file (``data.follow``) and an
    engine of several angles keep float amplitudes in memory.
    """
    from ptyframe.data import memory
    from ptyframe.data.counts import frame_reader

    cfg, engine, ds = run.cfg, run.engine, run.dataset
    reader = frame_reader(ds, 0)
    angles = ds.n_angles if engine.wants_all_angles else 1
    ny, nx = ds.geometry.object_shape
    from ptyframe.data.follow import GrowingDataset

    follow = bool(_data_option(run, "follow", False)) or isinstance(ds, GrowingDataset)
    can = engine.capabilities.streams and not engine.wants_all_angles and not follow
    complex_bytes = 16 if cfg.dtype == "complex128" else 8
    host = cfg.patterns_on_host or torch.device(run.context.device).type == "cpu"
    narrower = int(reader.dtype.itemsize) < complex_bytes // 2
    shape = memory.run_shape(
        engine,
        n_local * angles,
        ds.window,
        object_px=int(ny) * int(nx),
        modes=int(cfg.init.probe_modes),
        complex_bytes=complex_bytes,
        stored_bytes=int(reader.dtype.itemsize),
        mask_per_pattern=reader.rule.saturation is not None,
        holds_counts=can and narrower and host,
    )
    stream = str(_data_option(run, "stream", "auto"))
    block = _data_option(run, "block_patterns", None)
    if follow and stream == "true":
        raise ConfigError(
            "data.follow=true keeps the patterns in memory (streaming a growing file is not "
            "supported yet); set data.stream=auto or false"
        )
    available = memory.available_bytes()
    plan = memory.plan(shape, stream, available, block, can)
    if run.distribution.is_root:
        log.info("%s; %s available", plan.message, memory.gib(available))
    run.attrs.update(
        memory_estimate_bytes=int(plan.estimate.total),
        patterns_streamed=bool(plan.stream),
        stream_block_patterns=int(plan.block),
        patterns_as_counts=bool(plan.counts),
    )
    return plan


def _finished_result(path: Path, fp: str) -> RunResult | None:
    """Return the stored run at ``path`` if it ended with the config fingerprint ``fp``.

    Ended: finished, or diverged (the same config diverges again: seeds are fixed).
    """
    from ptyframe.io.results import read_result

    try:
        stored = read_result(path)
    except PtyframeError:
        return None
    if stored.attrs.get("status") not in ("finished", "diverged"):
        return None
    if fingerprint(str(stored.attrs.get("config", ""))) != fp:
        return None
    state = ReconstructionState(
        torch.from_numpy(stored.object),
        torch.from_numpy(stored.probe),
        torch.from_numpy(stored.positions_px),
    )
    final = {k: stored.history.last(k) for k in stored.history.columns}
    return RunResult(state, stored.history, "skipped", path.parent, [path], final)


# ---------------------------------------------------------------------- Python facade
def reconstruct(
    data: str | Path | PtychoDataset,
    engine: Any = "epie",
    *,
    out_dir: str | Path | None = None,
    registry: Registry | None = None,
    init: dict[str, Any] | None = None,
    seed: int = 0,
    progress: bool = False,
    metrics_every: int = 0,
    overwrite: bool = False,
    device: str = "cpu",
    patterns_on_host: bool = False,
    threads: int = 0,
    deterministic: bool = True,
    **engine_options: Any,
) -> RunResult:
    """Reconstruct ``data`` without Hydra; write files only when ``out_dir`` is given.

    ``engine`` is a registered name, a config dataclass or a mapping; ``engine_options``
    (``epochs=50, alpha=0.3``) override its fields. Example::

        result = ptyframe.reconstruct("demo.h5", "rpie", epochs=50, alpha=0.15, beta=5.0)
        result.object  # complex [1, Ny, Nx]

    ``device`` (``cpu``, ``cuda``, ``cuda:N``, ``auto``), ``patterns_on_host``, ``threads``
    and ``deterministic`` are the run options of the same names (the manual's guide/gpu and
    guide/determinism).
    """
    if registry is None:
        from ptyframe.plugins import default_registry

        registry = default_registry()
    eng = registry.config("engine", engine)
    if engine_options:
        eng = dataclasses.replace(eng, **engine_options)
    ds = data if isinstance(data, PtychoDataset) else None
    cfg = ReconstructConfig(
        data=None
        if ds is not None
        else registry.config("dataset", {"name": "file", "path": str(data)}),
        engine=eng,
        seed=seed,
        progress=progress,
        device=device,
        patterns_on_host=patterns_on_host,
        threads=threads,
        deterministic=deterministic,
    )
    from ptyframe.config import MetricsConfig, OutputConfig
    from ptyframe.initial import InitConfig

    cfg.init = InitConfig(**(init or {}))
    cfg.metrics = MetricsConfig(every=metrics_every)
    cfg.output = OutputConfig(
        dir=None if out_dir is None else str(out_dir), overwrite=overwrite, checkpoint_every=0
    )
    return run(cfg, registry, out_dir=out_dir, dataset=ds, write=out_dir is not None)
