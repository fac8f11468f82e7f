"""A run context around a fake engine (no physics, no files read) for the run-loop tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ptyframe.callbacks.base import RunContext
from ptyframe.distributed.base import SingleProcess
from ptyframe.engines.base import Engine, EpochReport
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
    """Return a run of ``FakeEngine(errors, factor, hook)`` writing into ``tmp_path``."""
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
