"""docs/extending/forward-models.md: the page's worked example runs as written and is right.

The page's ``python`` blocks are executed as they stand, in order, as one module. What this
catches: a change of the ``ForwardModel`` contract that breaks the how-to, an example whose
intensities are wrong (it must equal ``FarFieldPtychography`` at whole-pixel positions with
one probe mode, and keep Parseval's total), and a registration path that no longer reaches
``engine=autodiff physics=<name>`` (a noiseless reconstruction through it must fit the data).
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch

from ptyframe.config import ReconstructConfig
from ptyframe.physics.base import Batch, ForwardModel
from ptyframe.physics.farfield import FarFieldPtychography
from ptyframe.plugins import build_registry, make_plugin_manager
from ptyframe.runner import run
from ptyframe.state import ReconstructionState

from synth import make_dataset

PAGE = Path(__file__).resolve().parents[1] / "docs" / "extending" / "forward-models.md"


@pytest.fixture
def howto(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The page's Python blocks, executed in order as the module ``forward_model_howto``."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 2, "the page lost its example or its registration"
    module = types.ModuleType("forward_model_howto")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), module.__dict__)
    return module


def test_the_example_is_far_field_ptychography_at_whole_pixels(howto: types.ModuleType) -> None:
    """Equal to the built-in far-field model at integer positions (one mode), and unitary."""
    ds = make_dataset(m=16, n=4, step=4.0)  # raster positions at whole pixels
    assert ds.truth is not None
    state = ReconstructionState(
        torch.from_numpy(ds.truth.object).to(torch.complex128),
        torch.from_numpy(ds.truth.probe).to(torch.complex128),
        torch.from_numpy(ds.geometry.positions_px.copy()),
    )
    model = howto.WholePixelFarField()
    assert isinstance(model, ForwardModel)
    model.setup(ds.geometry)
    unknowns = model.unknowns(state)
    assert set(unknowns) == {"object", "probe", "positions"} and unknowns["positions"].fixed
    v = {name: u.value for name, u in unknowns.items()}
    tiles = torch.arange(ds.geometry.n_tiles)
    pred = model.predict(v, Batch(0, tiles))
    ref = FarFieldPtychography().intensities(state.object, state.probe, state.positions_px)
    assert pred.shape == ref.shape == (16, 16, 16)
    assert torch.allclose(pred, ref, rtol=1e-12, atol=1e-12 * float(ref.max()))
    # Parseval: the unitary detector keeps each exit wave's power
    patches = torch.stack(
        [state.object[0, y : y + 16, x : x + 16] for y, x in state.positions_px.long().tolist()]
    )
    power = (patches * state.probe[0]).abs().square().sum(dim=(-2, -1))
    assert torch.allclose(pred.sum(dim=(-2, -1)), power, rtol=1e-10)


def test_the_registered_example_reconstructs_with_autodiff(howto: types.ModuleType) -> None:
    """Registered through its hook, ``physics=whole_pixel_farfield`` fits noiseless data."""
    pm, infos = make_plugin_manager([("forward_model_howto", howto)])
    registry = build_registry(pm, infos)
    comp = registry.get("forward_model", "whole_pixel_farfield")
    assert comp.provider.startswith("forward_model_howto")
    assert comp.config_cls is howto.WholePixelConfig
    ds = make_dataset(m=16, n=4, step=4.0)
    cfg = ReconstructConfig(
        engine=registry.config("engine", {"name": "autodiff", "epochs": 40, "minibatch": 4}),
        physics=registry.config("forward_model", {"name": "whole_pixel_farfield"}),
    )
    result = run(cfg, registry, dataset=ds, write=False)
    errors = result.history.columns["data_error"]
    assert result.status == "finished" and len(errors) == 40
    assert errors[-1] < 0.5 * errors[0], errors
