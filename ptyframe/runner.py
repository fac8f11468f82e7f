"""Compose components from a config and run them: the only place that does.

``run(cfg)`` builds the distribution, the engine and the dataset from the registry, makes the
starting state, drives the engine epoch by epoch and takes care of everything around it:
progress bar, per-epoch history, ground-truth metrics, checkpoints, the divergence guard,
Ctrl-C, and the outputs (``recon.h5``, PNG images, ``config.yaml``). Every check that can fail
on user input happens before the first epoch, and nothing is written before then.

Distribution: each rank reads its tiles (``Distribution.shard_tiles``), then
``Distribution.localize_state`` may cut the state down to the object rows those tiles touch
(the distributed-object modes); the runner then gathers the whole state on the root
(``gather_state``, collective) only where it needs it: metrics, checkpoints and the outputs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ptyframe.config import ReconstructConfig
from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.measurements import Measurements
from ptyframe.engines.base import Engine, EpochReport
from ptyframe.errors import (
    ConfigError,
    DivergenceError,
    OutputExistsError,
    PtyframeError,
    find_ptyframe_error,
)
from ptyframe.initial import initial_state
from ptyframe.io.checkpoint import fingerprint, load_checkpoint, restore_rng, save_checkpoint
from ptyframe.io.results import History, package_versions, write_result
from ptyframe.metrics.illumination import illumination_map, truth_reference
from ptyframe.metrics.noise_floor import check_run
from ptyframe.progress import Progress, still_improving
from ptyframe.registry import BuildContext, Registry
from ptyframe.state import ReconstructionState, complex_dtype

log = logging.getLogger("ptyframe")

RESULT_FILE = "recon.h5"
#: ``events(name, distribution, state)``: see ``run``.
Events = Callable[[str, Any, "ReconstructionState | None"], None]
CHECKPOINT_FILE = "checkpoint.h5"


@dataclass
class RunResult:
    """What a run produced. ``status`` is ``finished``, ``interrupted`` or ``diverged``."""

    state: ReconstructionState
    history: History
    status: str
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

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
    except Exception as exc:  # noqa: BLE001 - OmegaConf wraps errors from __post_init__
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
        obj = ReconstructConfig(**obj)
    return obj  # type: ignore[return-value]


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


# ---------------------------------------------------------------------- metrics
class TruthMetrics:
    """Compute the configured metric components against the dataset's ground truth."""

    def __init__(
        self, names: list[str], registry: Registry, context: BuildContext, dataset: PtychoDataset
    ) -> None:
        reference = truth_reference(dataset)
        self.enabled = reference is not None and bool(names)
        if reference is None or not self.enabled:
            return
        self.truth, self.illumination = reference
        self.pixel_size_m = dataset.geometry.pixel_size_m
        self.metrics = [registry.build("metric", n, context) for n in names]

    def __call__(self, estimate: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        if not self.enabled or estimate.shape != self.truth.shape:
            return out
        prepared = None
        if hasattr(self.metrics[0], "prepare"):  # align once, share with every metric
            prepared = self.metrics[0].prepare(estimate, self.truth, self.illumination)
        for metric in self.metrics:
            kw = {"prepared": prepared} if prepared is not None else {}
            out.update(metric(estimate, self.truth, self.illumination, self.pixel_size_m, **kw))
        return out


@dataclass
class _RunView:
    """Interim stand-in for the callback loop's run context (``data.follow`` callbacks)."""

    cfg: Any
    distribution: Any
    engine: Engine
    dataset: PtychoDataset
    measurements: list[Measurements]
    state: ReconstructionState
    history: History
    out_dir: Path
    callbacks: list[Any] = field(default_factory=list)
    writer: bool = False
    epoch: int = 0
    end_epoch: int = 0
    status: str = "running"

    def whole(self) -> ReconstructionState | None:
        return _whole(self.distribution, self.state)

    def following(self) -> bool:
        """Return whether the scan is still being written (every epoch may not be the last)."""
        return any(hasattr(cb, "complete") and not cb.complete for cb in self.callbacks)

    def attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for cb in self.callbacks:
            if hasattr(cb, "timed_out"):
                out.update(follow_timed_out=cb.timed_out, scan_complete=cb.complete)
        return out


def _follow_callbacks(
    cfg: ReconstructConfig,
    dist: Any,
    engine: Engine,
    dataset: PtychoDataset,
    meas: list[Measurements],
    state: ReconstructionState,
    history: History,
    out: Path,
) -> tuple[_RunView, list[Any]]:
    """Return the run view and the callbacks of ``data.follow=true`` (none otherwise)."""
    view = _RunView(cfg, dist, engine, dataset, meas, state, history, out)
    data = cfg.data if isinstance(cfg.data, dict) else vars(cfg.data or object())
    if not data.get("follow", False):
        return view, []
    from ptyframe.callbacks.follow import FollowCallback
    from ptyframe.callbacks.live import LiveOutputs

    view.callbacks = [
        FollowCallback(float(data.get("follow_timeout_s", 60.0))),
        LiveOutputs(float(cfg.output.live_every_s), bool(cfg.output.images)),
    ]
    return view, view.callbacks


def _validation_set(dataset: PtychoDataset, device: str, dtype: torch.dtype) -> Any:
    """Return the held-out patterns' ``ValidationSet`` (``data.validation_fraction``) or None."""
    from ptyframe.data.holdout import held_out_of

    held = held_out_of(dataset)
    if held is None:
        return None
    from ptyframe.metrics.validation import ValidationSet

    return ValidationSet(held, device, dtype)


def _estimate(engine: Engine, state: ReconstructionState) -> np.ndarray:
    """Return the 2-D object the metrics compare (product of slices for multislice)."""
    if hasattr(engine, "projected_object"):
        return np.asarray(engine.projected_object(state))  # type: ignore[attr-defined]
    obj = state.object.detach().cpu().numpy()
    return np.prod(obj, axis=0) if obj.shape[0] > 1 else obj[0]


# ---------------------------------------------------------------------- the run
def run(
    cfg: Any,
    registry: Registry | None = None,
    out_dir: str | Path | None = None,
    dataset: PtychoDataset | None = None,
    write: bool = True,
    events: Events | None = None,
) -> RunResult:
    """Run the reconstruction ``cfg`` describes; write outputs into ``out_dir`` if ``write``.

    ``out_dir`` defaults to ``cfg.output.dir`` or the current directory (Hydra's run dir).
    ``events(name, distribution, state)`` is called at ``"data"`` (this rank's patterns are
    loaded, no object yet; ``state`` None), ``"prepared"`` (the engine is prepared on this
    rank's state, a window of the object for split distributions) and ``"done"`` (after the
    last epoch, before the final gather): for measurements such as ``benchmarks/mpi_memory.py``.
    """
    if registry is None:
        from ptyframe.plugins import default_registry

        registry = default_registry()
    cfg = typed_config(cfg)
    device = resolve_device(cfg.device)
    ctx = BuildContext(registry, device, cfg.dtype, int(cfg.seed), run=cfg)
    dist = registry.build("distribution", cfg.distribution or "single", ctx)
    stop = _StopRequest(agreed=dist.size > 1)
    try:
        return _run(cfg, registry, ctx, dist, device, out_dir, dataset, write, events, stop)
    except (Exception, KeyboardInterrupt) as exc:
        if dist.size > 1 and not isinstance(exc, KeyboardInterrupt):
            dist.abort(str(exc) or type(exc).__name__)  # no rank may hang in a collective
        raise
    finally:
        stop.uninstall()


def _no_events(name: str, dist: Any, state: ReconstructionState | None) -> None:
    """Ignore run events (the default of ``run``)."""


class AgreedStop(KeyboardInterrupt):
    """Every rank stops at the same epoch boundary (a signal seen by any rank)."""


class _StopRequest:
    """Turn SIGINT/SIGTERM into a stop of the run with the state saved.

    Batch systems (SLURM, PBS) end a job with SIGTERM before killing it; Ctrl-C sends SIGINT.
    One process: SIGTERM raises ``KeyboardInterrupt`` at once, like Ctrl-C. Several ranks
    (``agreed``): a signal only sets a flag; after each epoch the ranks sum their flags
    (``sum_scalars``) and all raise ``AgreedStop`` together, so the state can be gathered and
    saved (no rank is left inside a collective). A second signal stops at once.
    Only the main thread can install handlers; elsewhere nothing changes.
    """

    def __init__(self, agreed: bool) -> None:
        self.agreed = agreed
        self.requested = False
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        signals = (signal.SIGINT, signal.SIGTERM) if agreed else (signal.SIGTERM,)
        for sig in signals:
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.agreed and not self.requested:
            self.requested = True
            log.warning("signal %d: stopping after this epoch (again: stop now)", signum)
            return
        raise KeyboardInterrupt(f"signal {signum}")

    def check(self, dist: Any) -> None:
        """Raise ``AgreedStop`` on every rank if any rank was signalled (collective)."""
        if self.agreed and dist.sum_scalars(float(self.requested))[0] > 0:
            raise AgreedStop("stop requested")

    def uninstall(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}


def _run(
    cfg: ReconstructConfig,
    registry: Registry,
    ctx: BuildContext,
    dist: Any,
    device: str,
    out_dir: str | Path | None,
    dataset: PtychoDataset | None,
    write: bool,
    events: Events | None = None,
    stop: _StopRequest | None = None,
) -> RunResult:
    events = events or _no_events
    stop = stop or _StopRequest(agreed=False)
    engine: Engine = registry.build("engine", cfg.engine or "epie", ctx)
    for key, reg in (cfg.regularizers or {}).items():
        registry.config("regularizer", reg)  # typo check before any work
        del key
    if dataset is None:
        if cfg.data is None:
            raise ConfigError("no data source: give `data.path=FILE.h5` or `data=simulated`")
        dataset = registry.build("dataset", cfg.data, ctx)
    if dataset.n_angles > 1 and not engine.wants_all_angles:
        raise ConfigError(
            f"the dataset has {dataset.n_angles} angles but engine {cfg_name(engine)!r} "
            "reconstructs a single angle; use engine=autodiff with a tomography forward model"
        )
    out = Path(out_dir if out_dir is not None else (cfg.output.dir or ".")).resolve()
    out = Path(str(dist.broadcast_object(str(out))))  # every rank uses rank 0's directory
    result_path, ckpt_path = out / RESULT_FILE, out / CHECKPOINT_FILE
    writer = write and dist.is_root
    if cfg.output.skip_done and result_path.exists():
        done = _finished_result(result_path, fingerprint(config_yaml(cfg)))
        if done is not None:
            log.info("skipping: %s already holds this finished run", result_path)
            return done
    if writer and result_path.exists() and not (cfg.output.overwrite or cfg.resume):
        raise OutputExistsError(
            f"{result_path} already exists; choose another output.dir, set "
            "output.overwrite=true, or resume=true to continue an interrupted run"
        )
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    elif getattr(engine, "prefers_single_thread", False):
        torch.set_num_threads(1)
    torch.manual_seed(int(cfg.seed))
    np.random.seed(int(cfg.seed) % 2**32)

    # ---- measurements and state
    indices = dist.shard_tiles(np.asarray(dataset.geometry.positions_px))
    rdt = torch.float64 if cfg.dtype == "complex128" else torch.float32
    meas_all = [
        Measurements.from_dataset(dataset, a, indices, device, rdt)
        for a in range(dataset.n_angles if engine.wants_all_angles else 1)
    ]
    photons, n_local = dist.sum_scalars(
        meas_all[0].mean_intensity_sum() * meas_all[0].n, float(meas_all[0].n)
    )
    events("data", dist, None)
    state = initial_state(
        cfg.init,
        dataset,
        meas_all[0],
        dtype=cfg.dtype,
        device=device,
        photons_per_pattern=photons / max(n_local, 1.0),
    )
    state = engine.init_state(state, dataset)
    yaml_text = config_yaml(cfg)
    fp = fingerprint(yaml_text)
    history = History()
    start = 0
    if cfg.resume:
        ckpt = load_checkpoint(ckpt_path, device)
        if ckpt.fingerprint != fp:
            raise ConfigError(
                f"{ckpt_path} was written by a run with a different config; resume only with "
                "the same settings (or start a new run in another output.dir)"
            )
        cdt = complex_dtype(cfg.dtype)
        state = ReconstructionState(
            ckpt.state.object.to(cdt),
            ckpt.state.probe.to(cdt),
            ckpt.state.positions_px,
            ckpt.state.extras,
        )
        history, start = ckpt.history, ckpt.next_epoch
        if dist.is_root:
            log.info(
                "resuming from %s: epoch %d of %d (data error %.4g)",
                ckpt_path,
                start,
                engine.epochs,
                history.last("data_error") if history.epochs else float("nan"),
            )
    # object-splitting distributions keep only the rows this rank's tiles touch from here on;
    # ``_whole`` reassembles the object (collectively) for metrics, checkpoints and outputs
    state = dist.localize_state(state, indices)
    windowed = not dist.holds_whole_state
    engine.prepare(meas_all if engine.wants_all_angles else meas_all[0], state, dist, int(cfg.seed))
    if cfg.resume:
        engine.load_state_dict(_local_engine_state(ckpt.engine_state, dist, ckpt_path))
        restore_rng(ckpt.rng)
    events("prepared", dist, state)
    metrics = TruthMetrics(list(cfg.metrics.names), registry, ctx, dataset)
    validation = _validation_set(dataset, device, rdt)  # None unless data.validation_fraction

    # ---- the loop
    status = "finished"
    good = state.clone()
    best_err = math.inf
    bar = Progress(
        engine.epochs, start, enabled=cfg.progress and dist.is_root, interval_s=cfg.progress_every_s
    )
    epoch = start
    # interim hook (data.follow) until the callback loop lands: see _follow_callbacks
    view, callbacks = _follow_callbacks(cfg, dist, engine, dataset, meas_all, state, history, out)
    view.writer, view.epoch, view.end_epoch = writer, start, engine.epochs
    for cb in callbacks:
        cb.on_run_start(view)
    if callbacks:  # patterns may have joined
        good = state.clone()
    try:
        while epoch < view.end_epoch:
            report = engine.step(epoch)
            values = {"data_error": report.data_error, "seconds": report.seconds, **report.scalars}
            last = epoch == view.end_epoch - 1 and not view.following()
            every = int(cfg.metrics.every)
            if metrics.enabled and (last or (every and (epoch + 1) % every == 0)):
                whole = _whole(dist, state)
                if whole is not None:
                    values.update(metrics(_estimate(engine, whole)))
            if validation is not None and (last or (every and (epoch + 1) % every == 0)):
                whole = _whole(dist, state)
                if whole is not None:
                    values["validation_error"] = validation.error(whole)
            finite = state.is_finite()
            if windowed:  # every rank must agree, or some would stop and others wait
                finite = dist.sum_scalars(float(not finite))[0] == 0
            _check_divergence(report, finite, best_err, cfg.guard.max_error_growth)
            best_err = min(best_err, report.data_error)
            history.append(epoch, values)
            _keep(good, state)
            bar.update(report.data_error)
            for cb in callbacks:  # may add patterns (positions grow) and move end_epoch
                cb.on_epoch_end(view, report)
            if good.positions_px.shape != state.positions_px.shape:
                good = state.clone()
            every_ckpt = 0 if callbacks else int(cfg.output.checkpoint_every)
            if write and every_ckpt and (epoch + 1) % every_ckpt == 0 and not last:
                whole = _whole(dist, state)
                engine_state = _engine_state(engine, dist)
                if writer and whole is not None:
                    save_checkpoint(ckpt_path, whole, engine_state, history, epoch + 1, fp)
            if not last:
                stop.check(dist)
            epoch += 1
        epoch = view.end_epoch
        events("done", dist, state)
    except DivergenceError as exc:
        status = "diverged"
        log.error("%s", exc)
        _restore(state, good)
        whole = _whole(dist, state) if write else None
        if writer and whole is not None:
            _finish(
                cfg,
                out,
                result_path,
                whole,
                history,
                status,
                yaml_text,
                dataset,
                metrics,
                engine,
                overwrite=True,
            )
        raise DivergenceError(
            f"{exc}. The last good state (epoch {len(history.epochs)}) is saved in "
            f"{result_path if writer else '(not written)'}"
        ) from None
    except KeyboardInterrupt as exc:
        status = "interrupted"
        _restore(state, good)
        agreed = isinstance(exc, AgreedStop)  # every rank is here, at the same epoch
        if windowed and not agreed:
            # a second signal: ranks stopped at different points, some inside a collective;
            # gathering the windows could hang, so nothing beyond the last checkpoint is saved
            log.error(
                "interrupted: the object is split over ranks (%s), nothing saved; use "
                "output.checkpoint_every to keep progress",
                getattr(dist, "mode", type(dist).__name__),
            )
            raise
        whole = _whole(dist, state) if agreed else state
        engine_state = _engine_state(engine, dist) if agreed else engine.state_dict()
        if writer and whole is not None:
            done = len(history.epochs)
            save_checkpoint(ckpt_path, whole, engine_state, history, done, fp)
            _finish(
                cfg,
                out,
                result_path,
                whole,
                history,
                status,
                yaml_text,
                dataset,
                metrics,
                engine,
                overwrite=True,
            )
        raise
    finally:
        bar.close()
        for cb in callbacks:
            cb.on_run_end(view, status)
    fall = still_improving(history.columns.get("data_error", []))
    if fall is not None and dist.is_root:
        n = max(5, len(history.epochs) // 10)
        log.warning(
            "not converged: the data error still fell %.1f %% over the last %d epochs; a run "
            "with more epochs (e.g. engine.epochs=%d) would likely improve the result",
            100 * fall,
            n,
            2 * engine.epochs,
        )
    files: list[Path] = []
    whole = _whole(dist, state)
    stall = check_run(meas_all, dist, history.last("data_error"), log)  # noise floor, warning
    if writer and whole is not None:
        files = _finish(
            cfg,
            out,
            result_path,
            whole,
            history,
            status,
            yaml_text,
            dataset,
            metrics,
            engine,
            overwrite=cfg.output.overwrite or cfg.resume or bool(callbacks),
            extra_attrs={**stall, **view.attrs()},
        )
        if ckpt_path.exists():
            ckpt_path.unlink()
    final = {k: history.last(k) for k in history.columns}
    log.info("done: %d epochs, data error %.4g", len(history.epochs), final.get("data_error", 0))
    state = whole if whole is not None else state  # non-root ranks of a windowed run: a window
    return RunResult(state, history, status, out if writer else None, files, final)


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


def cfg_name(engine: Engine) -> str:
    return str(getattr(engine.config, "name", type(engine).__name__))


def _whole(dist: Any, state: ReconstructionState) -> ReconstructionState | None:
    """Return the whole state: ``state`` itself, or gathered from the ranks' windows.

    Collective when the distribution split the object (``localize_state``): every rank must
    call it; the root gets the whole state, the others None.
    """
    return state if dist.holds_whole_state else dist.gather_state(state)


#: Key of a checkpoint's engine state that holds one state per rank (object windows).
PER_RANK = "_per_rank_engine_states"


def _engine_state(engine: Engine, dist: Any) -> dict[str, Any]:
    """Return the engine state to checkpoint (collective when the object is split).

    On object windows each rank's engine holds state for its own rows (e.g. Adam moments of
    its window): the root gets every rank's state with the rank layout, to give each one
    back on resume.
    """
    if dist.holds_whole_state:
        return engine.state_dict()
    parts = dist.gather_object(engine.state_dict())
    return {PER_RANK: parts, "layout": dist.layout()}


def _local_engine_state(saved: dict[str, Any], dist: Any, path: Path) -> dict[str, Any]:
    """Return this rank's engine state from a checkpoint (see ``_engine_state``)."""
    if PER_RANK not in saved:
        return saved
    parts, layout = saved[PER_RANK], saved.get("layout")
    if dist.holds_whole_state or len(parts) != dist.size or layout != dist.layout():
        raise ConfigError(
            f"{path} was written on object windows by {len(parts)} ranks (rows {layout}); "
            f"resume with the same distribution and rank count (here: {dist.size} ranks, "
            f"rows {dist.layout()})"
        )
    return parts[dist.rank]


def _check_divergence(report: EpochReport, finite: bool, best: float, growth: float) -> None:
    err = report.data_error
    if not math.isfinite(err) or not finite:
        raise DivergenceError(
            f"epoch {report.epoch + 1}: the reconstruction became non-finite (NaN/Inf); lower "
            "the step sizes (alpha, beta, learning rates)"
        )
    if math.isfinite(best) and err > growth * best:
        raise DivergenceError(
            f"epoch {report.epoch + 1}: data error {err:.4g} exploded (> {growth:g} x the best "
            f"{best:.4g}); lower the step sizes, or raise guard.max_error_growth"
        )


def _keep(good: ReconstructionState, state: ReconstructionState) -> None:
    """Copy ``state`` into ``good`` in place (no second object-sized copy while swapping)."""
    with torch.no_grad():
        good.object.copy_(state.object)
        good.probe.copy_(state.probe)
        good.positions_px.copy_(state.positions_px)
    good.extras.clear()
    good.extras.update({k: v.clone() for k, v in state.extras.items()})


def _restore(state: ReconstructionState, good: ReconstructionState) -> None:
    state.object.copy_(good.object)
    state.probe.copy_(good.probe)
    state.positions_px.copy_(good.positions_px)
    for k, v in good.extras.items():
        state.extras[k] = v


def _finish(
    cfg: ReconstructConfig,
    out: Path,
    result_path: Path,
    state: ReconstructionState,
    history: History,
    status: str,
    yaml_text: str,
    dataset: PtychoDataset,
    metrics: TruthMetrics,
    engine: Engine,
    overwrite: bool,
    extra_attrs: dict[str, Any] | None = None,
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    attrs = {
        "config": yaml_text,
        "versions": json.dumps(package_versions()),
        "seed": int(cfg.seed),
        "status": status,
        "epochs_done": len(history.epochs),
        "engine": cfg_name(engine),
        "data_path": str(getattr(dataset, "path", "") or "(in memory)"),
        "pixel_size_m": float(dataset.geometry.pixel_size_m),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "still_improving": still_improving(history.columns.get("data_error", [])) is not None,
        "data_conventions": json.dumps(getattr(dataset, "conventions", {}), default=str),
        **(extra_attrs or {}),
    }
    arrays = state.numpy()
    final = _final_frc(engine, state, metrics)  # once: recon.h5 and frc.png share it
    if final is not None:
        arrays.update(
            {"final/frc": np.asarray(final.frc), "final/freq_per_m": np.asarray(final.freq_per_m)}
        )
    write_result(result_path, arrays, history, attrs, overwrite=True)
    (out / "config.yaml").write_text(yaml_text)
    files = [result_path, out / "config.yaml"]
    if cfg.output.format == "cxi":  # the same result with CXI conventions
        from ptyframe.io.cxi import write_cxi_result

        files.append(write_cxi_result(out / "recon.cxi", arrays, history, dataset, attrs))
    if cfg.output.images:
        files += _images(out, state, history, dataset, metrics, engine, final)
    return files


def _final_frc(engine: Engine, state: ReconstructionState, metrics: TruthMetrics) -> Any:
    """Return the last object's ``FrcResult`` against the truth, or None (no truth/lit area)."""
    est = _estimate(engine, state)
    if not metrics.enabled or est.shape != metrics.truth.shape:
        return None
    try:
        from ptyframe.metrics.frc import frc_against_truth

        res, _ = frc_against_truth(est, metrics.truth, metrics.illumination, metrics.pixel_size_m)
    except (ImportError, ValueError, PtyframeError):  # no metrics package, or no lit area
        return None
    return res


def _images(
    out: Path,
    state: ReconstructionState,
    history: History,
    dataset: PtychoDataset,
    metrics: TruthMetrics,
    engine: Engine,
    final: Any = None,
) -> list[Path]:
    """Write the run's PNGs; ``final`` is the last object's FRC against the truth, if any."""
    from ptyframe.io import images

    est = _estimate(engine, state)
    illum = (
        metrics.illumination
        if metrics.enabled
        else illumination_map(
            state.probe.detach().cpu().numpy(), dataset.geometry.positions_px, est.shape
        )
    )
    pixel_m = float(dataset.geometry.pixel_size_m)
    files = images.object_images(est, out, pixel_m, illum)
    files.append(images.probe_image(state.probe.detach().cpu().numpy(), out, pixel_m))
    if history.epochs:
        files.append(images.convergence_image(history, out))
    m = images.metrics_image(history, out)
    if m is not None:
        files.append(m)
    if final is not None:
        files.append(
            images.frc_image(
                final.freq_per_m,
                final.frc,
                final.half_bit,
                0.5 / metrics.pixel_size_m,
                out,
                resolution_m=final.resolution_m("half_bit"),
            )
        )
    return files


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
    **engine_options: Any,
) -> RunResult:
    """Reconstruct ``data`` without Hydra; write files only when ``out_dir`` is given.

    ``engine`` is a registered name, a config dataclass or a mapping; ``engine_options``
    (``epochs=50, alpha=0.3``) override its fields. Example::

        result = ptyframe.reconstruct("demo.h5", "rpie", epochs=50, alpha=0.15, beta=5.0)
        result.object  # complex [1, Ny, Nx]
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
    )
    from ptyframe.config import MetricsConfig, OutputConfig
    from ptyframe.initial import InitConfig

    cfg.init = InitConfig(**(init or {}))
    cfg.metrics = MetricsConfig(every=metrics_every)
    cfg.output = OutputConfig(
        dir=None if out_dir is None else str(out_dir), overwrite=overwrite, checkpoint_every=0
    )
    return run(cfg, registry, out_dir=out_dir, dataset=ds, write=out_dir is not None)
