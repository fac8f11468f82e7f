"""The run loop and each callback alone, against a fake engine (no physics, no files read).

The fake engine multiplies the object by a known factor each epoch and reports data errors
from a given list, so every assertion below can be checked by hand: which epochs are
recorded, which state is restored, when a run stops, what a checkpoint holds.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.callbacks.checkpoint import CHECKPOINT_FILE, CheckpointCallback
from ptyframe.callbacks.convergence import ConvergenceCallback
from ptyframe.callbacks.early_stop import EarlyStop, EarlyStopConfig
from ptyframe.callbacks.guard import DivergenceGuard
from ptyframe.callbacks.history import HistoryCallback
from ptyframe.callbacks.outputs import RESULT_FILE, OutputsCallback
from ptyframe.callbacks.progress import ProgressCallback
from ptyframe.callbacks.signals import SignalsCallback
from ptyframe.callbacks.truth import TruthMetricsCallback
from ptyframe.config import GuardConfig, MetricsConfig, OutputConfig
from ptyframe.data.measurements import Measurements
from ptyframe.distributed.base import SingleProcess
from ptyframe.engines.base import Engine, EpochReport
from ptyframe.errors import ConfigError, DivergenceError
from ptyframe.loop import run_loop
from ptyframe.state import ReconstructionState


class FakeEngine(Engine):
    """Multiply the object by ``factor`` each epoch; report ``errors[epoch]``."""

    def __init__(self, errors: list[float], factor: float = 2.0, hook=None) -> None:
        super().__init__()
        self.config = SimpleNamespace(name="fake", epochs=len(errors))
        self.errors, self.factor, self.hook = errors, factor, hook
        self.steps: list[int] = []

    def step(self, epoch: int) -> EpochReport:
        assert self.state is not None
        if self.hook is not None:
            self.hook(epoch)
        self.state.object.mul_(self.factor)
        self.steps.append(epoch)
        return EpochReport(epoch, self.errors[epoch], 0.01, {"k": float(epoch)})

    def state_dict(self):
        return {"steps": list(self.steps)}

    def load_state_dict(self, state):
        self.steps = list(state["steps"])


def make_run(errors, tmp_path: Path, factor: float = 2.0, hook=None, **kw) -> RunContext:
    engine = FakeEngine(errors, factor, hook)
    state = ReconstructionState(
        torch.ones(1, 8, 8, dtype=torch.complex64),
        torch.ones(1, 4, 4, dtype=torch.complex64),
        torch.zeros(3, 2),
    )
    engine.state = state
    dataset = SimpleNamespace(
        geometry=SimpleNamespace(pixel_size_m=1e-8, positions_px=np.zeros((3, 2))),
        path="fake.h5",
        conventions={},
    )
    cfg = SimpleNamespace(seed=0, dtype="complex64", deterministic=True)
    run = RunContext(
        cfg=cfg,
        registry=None,
        context=SimpleNamespace(device="cpu"),
        distribution=SingleProcess(),
        engine=engine,
        dataset=dataset,
        out_dir=tmp_path,
        state=state,
        end_epoch=len(errors),
        fingerprint="fp",
        config_yaml="engine: fake\n",
        **kw,
    )
    return run


class Recorder(Callback):
    """Record every hook call as (hook, epoch, status)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_epoch_end(self, run, report):
        self.calls.append(("epoch", run.epoch, run.values["data_error"]))

    def on_exception(self, run, exc):
        self.calls.append(("exception", type(exc).__name__, run.status))

    def on_run_end(self, run, status):
        self.calls.append(("end", status))


def test_loop_calls_the_hooks_in_order_and_ends_finished(tmp_path):
    run = make_run([0.5, 0.4, 0.3], tmp_path)
    rec = Recorder()
    assert run_loop(run, [rec]) == "finished"
    assert rec.calls == [
        ("epoch", 0, 0.5),
        ("epoch", 1, 0.4),
        ("epoch", 2, 0.3),
        ("end", "finished"),
    ]
    assert run.engine.steps == [0, 1, 2] and run.epoch == 3
    assert torch.allclose(run.state.object.real, torch.full((1, 8, 8), 8.0))


@pytest.mark.parametrize(
    "exc, status",
    [(KeyboardInterrupt, "interrupted"), (DivergenceError, "diverged"), (ValueError, "failed")],
)
def test_loop_exception_path_sets_the_status_and_reraises(tmp_path, exc, status):
    def hook(epoch):
        if epoch == 1:
            raise exc("stop")

    run = make_run([0.5, 0.4, 0.3], tmp_path, hook=hook)
    rec = Recorder()
    with pytest.raises(exc):
        run_loop(run, [rec])
    assert rec.calls[-2:] == [("exception", exc.__name__, status), ("end", status)]
    assert run.status == status


def test_callbacks_run_by_order_not_by_list_position(tmp_path):
    seen = []

    class A(Callback):
        order = 90

        def on_epoch_end(self, run, report):
            seen.append("A")

    class B(Callback):
        order = 10

        def on_epoch_end(self, run, report):
            seen.append("B")

    run_loop(make_run([0.5], tmp_path), [A(), B()])
    assert seen == ["B", "A"]


def test_history_records_one_row_per_epoch_with_the_report_scalars(tmp_path):
    run = make_run([0.5, 0.4], tmp_path)
    run_loop(run, [HistoryCallback()])
    assert run.history.epochs == [0, 1]
    assert run.history.columns["data_error"] == [0.5, 0.4]
    assert run.history.columns["k"] == [0.0, 1.0]


def test_guard_stops_on_an_exploding_error_and_restores_the_last_good_state(tmp_path):
    # growth 4: epoch 3's error 6.0 exceeds 4 x the best 0.5
    run = make_run([1.0, 0.5, 6.0, 0.1], tmp_path)
    guard = DivergenceGuard(GuardConfig(max_error_growth=4.0))
    guard.on_prepared(run)
    with pytest.raises(DivergenceError, match="epoch 3: data error 6"):
        run_loop(run, [guard, HistoryCallback()])
    # epochs 0 and 1 were good (object 1 -> 2 -> 4); epoch 2 made it 8 and was refused
    assert torch.allclose(run.state.object.real, torch.full((1, 8, 8), 4.0))
    assert run.history.epochs == [0, 1] and run.status == "diverged"


def test_guard_stops_on_a_non_finite_state(tmp_path):
    run = make_run([1.0, 0.9], tmp_path, factor=float("nan"))
    guard = DivergenceGuard()
    guard.on_prepared(run)
    with pytest.raises(DivergenceError, match="non-finite"):
        run_loop(run, [guard])
    assert torch.allclose(run.state.object.real, torch.ones(1, 8, 8))  # the start, restored


def test_guard_restores_the_good_state_on_ctrl_c_mid_epoch(tmp_path):
    def hook(epoch):
        if epoch == 2:
            run.state.object.mul_(100.0)  # half an update, then Ctrl-C
            raise KeyboardInterrupt

    run = make_run([1.0, 0.9, 0.8], tmp_path, hook=hook)
    guard = DivergenceGuard()
    guard.on_prepared(run)
    with pytest.raises(KeyboardInterrupt):
        run_loop(run, [guard])
    assert torch.allclose(run.state.object.real, torch.full((1, 8, 8), 4.0))


def test_truth_metrics_every_n_epochs_and_after_the_last(tmp_path):
    calls = []

    def truth(estimate):
        calls.append(float(estimate.real.mean()))
        return {"frc": 0.1 * len(calls)}

    truth.enabled = True
    run = make_run([0.5] * 5, tmp_path)
    run.truth = truth
    run_loop(run, [TruthMetricsCallback(MetricsConfig(every=2)), HistoryCallback()])
    # due after epochs 2 and 4 (1-based) and the last (5): objects 4, 16, 32
    assert calls == [4.0, 16.0, 32.0]
    frc = run.history.columns["frc"]
    assert math.isnan(frc[0]) and frc[1] == pytest.approx(0.1) and frc[4] == pytest.approx(0.3)


def test_progress_off_a_terminal_writes_plain_lines(tmp_path, caplog):
    run = make_run([0.5, 0.4, 0.3], tmp_path)
    cb = ProgressCallback(enabled=True, interval_s=3600.0)
    cb.on_prepared(run)
    with caplog.at_level(logging.INFO, logger="ptyframe"):
        run_loop(run, [cb])
    lines = [r.getMessage() for r in caplog.records]
    # the first and the last epoch (the interval is an hour), no carriage returns
    assert [ln.split("  ")[0] for ln in lines] == ["epoch 1/3", "epoch 3/3"]
    assert not any("\r" in ln for ln in lines)


def test_checkpoint_every_n_epochs_then_resume_replaces_state_history_and_epoch(tmp_path):
    run = make_run([0.5, 0.4, 0.3, 0.2, 0.1], tmp_path)
    seen = []

    class Peek(Callback):
        order = 65  # after the checkpoint

        def on_epoch_end(self, run, report):
            seen.append((tmp_path / CHECKPOINT_FILE).exists())

    ckpt = CheckpointCallback(every=2)
    run_loop(run, [HistoryCallback(), ckpt, Peek()])
    # written after epochs 2 and 4 (not after the last), then removed at the end
    assert seen == [False, True, True, True, True] and not (tmp_path / CHECKPOINT_FILE).exists()

    run = make_run([0.5, 0.4, 0.3, 0.2, 0.1], tmp_path)

    def hook(epoch):
        if epoch == 3:
            raise KeyboardInterrupt

    run.engine.hook = hook
    guard = DivergenceGuard()
    guard.on_prepared(run)
    with pytest.raises(KeyboardInterrupt):
        run_loop(run, [guard, HistoryCallback(), CheckpointCallback(every=0)])
    with h5py.File(tmp_path / CHECKPOINT_FILE) as f:
        assert int(f.attrs["next_epoch"]) == 3
        assert np.allclose(f["state/object"][()].real, 8.0)  # after 3 good epochs

    fresh = make_run([0.5, 0.4, 0.3, 0.2, 0.1], tmp_path)
    resume = CheckpointCallback(every=0, resume=True)
    resume.on_run_start(fresh)
    resume.on_prepared(fresh)
    assert fresh.epoch == 3 and fresh.history.epochs == [0, 1, 2]
    assert torch.allclose(fresh.state.object.real, torch.full((1, 8, 8), 8.0))
    assert fresh.engine.steps == [0, 1, 2]  # the engine's own state came back too

    other = make_run([0.5], tmp_path)
    other.fingerprint = "another config"
    with pytest.raises(ConfigError, match="different config"):
        CheckpointCallback(resume=True).on_run_start(other)


def test_sigterm_stops_a_single_process_run_with_status_interrupted(tmp_path):
    def hook(epoch):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    run = make_run([0.5, 0.4, 0.3], tmp_path, hook=hook)
    sig = SignalsCallback()
    sig.setup(run)
    rec = Recorder()
    with pytest.raises(KeyboardInterrupt):
        run_loop(run, [sig, rec])
    assert rec.calls[-1] == ("end", "interrupted") and run.engine.steps == [0]
    assert sig.stop is None  # the handler was put back at the end


def test_early_stop_ends_when_the_error_stops_falling(tmp_path):
    errors = [1.0, 0.5, 0.4, 0.399, 0.3989, 0.3988, 0.1, 0.1]
    run = make_run(errors, tmp_path)
    cfg = EarlyStopConfig(patience=2, min_fall=0.01, min_epochs=0)
    run_loop(run, [EarlyStop(cfg), HistoryCallback()])
    # falls over 2 epochs: e2 (1.0->0.4) 60 %, e3 (0.5->0.399) 20 %, e4 (0.4->0.3989) 0.3 %: stop
    assert run.history.epochs == [0, 1, 2, 3, 4] and run.status == "finished"


def test_convergence_records_still_improving_and_the_noise_floor(tmp_path):
    errors = list(np.linspace(1.0, 0.5, 20))
    run = make_run(errors, tmp_path)
    amps = torch.sqrt(torch.poisson(torch.full((3, 4, 4), 50.0)))
    geometry = SimpleNamespace(positions_px=np.zeros((3, 2)))
    run.measurements = [Measurements(amps, None, np.arange(3), geometry)]  # type: ignore[arg-type]
    run_loop(run, [HistoryCallback(), ConvergenceCallback()])
    assert run.attrs["still_improving"] is True
    assert 0.0 < run.attrs["noise_floor"] < 0.2 and run.attrs["stalled"] is True


def test_outputs_write_the_last_good_state_of_an_interrupted_run(tmp_path):
    def hook(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    run = make_run([0.5, 0.4, 0.3], tmp_path, hook=hook)
    guard = DivergenceGuard()
    guard.on_prepared(run)
    with pytest.raises(KeyboardInterrupt):
        run_loop(run, [guard, HistoryCallback(), OutputsCallback(OutputConfig(images=False))])
    with h5py.File(tmp_path / RESULT_FILE) as f:
        assert f.attrs["status"] == "interrupted" and int(f.attrs["epochs_done"]) == 2
        assert np.allclose(f["object"][()].real, 4.0)
        assert list(f["history/data_error"][()]) == pytest.approx([0.5, 0.4])
    assert (tmp_path / "config.yaml").read_text() == "engine: fake\n"


def test_outputs_write_nothing_for_a_failed_run(tmp_path):
    def hook(epoch):
        raise ValueError("a bug")

    run = make_run([0.5], tmp_path, hook=hook)
    with pytest.raises(ValueError):
        run_loop(run, [OutputsCallback(OutputConfig(images=False))])
    assert not (tmp_path / RESULT_FILE).exists()


class CountingSplit(SingleProcess):
    """A distribution that claims to split the object and counts the gathers."""

    gathers = 0

    @property
    def holds_whole_state(self) -> bool:
        return False

    def gather_state(self, state):
        self.gathers += 1
        return state.clone()


def test_the_whole_state_is_gathered_once_per_epoch_for_all_callbacks(tmp_path):
    run = make_run([0.5, 0.4], tmp_path)
    run.distribution = CountingSplit()

    class Ask(Callback):
        def on_epoch_end(self, run, report):
            run.whole()

    run_loop(run, [Ask(), Ask(), Ask()])
    assert run.distribution.gathers == 2  # three asks per epoch, one gather each epoch
