"""Training entry point: Hydra composition, a tiny Lightning fit, exported weights, the hook."""

from __future__ import annotations

import json

import pytest
import torch
from ptyframe.denoise.dncnn import lipschitz_bound
from ptyframe.denoise.weights import load_denoiser
from ptyframe.errors import ConfigError

from ptyframe_lightning.plugin import ptyframe_commands, train_denoiser
from ptyframe_lightning.train import compose_config, fix_list_overrides, main

TINY = [
    "trainer.fast_dev_run=true",
    "data.n_train=4",
    "data.n_val=2",
    "data.batch_size=4",
    "data.patch_px=24",
    "model.arch.depth=3",
    "model.arch.channels=4",
    "threads=1",
]


def test_commands_hook() -> None:
    cmds = ptyframe_commands()
    assert cmds == {"train-denoiser": train_denoiser}
    assert train_denoiser.__doc__.strip().startswith("Train")


def test_list_overrides_and_composition() -> None:
    assert fix_list_overrides(["data.kind=diverse,textured", "a.b=1,2"]) == [
        "data.kind=[diverse,textured]",
        "a.b=1,2",
    ]
    cfg = compose_config(["trainer.max_epochs=50", "data.sigma=15", "data.kind=diverse,textured"])
    assert list(cfg.data.kind) == ["diverse", "textured"]
    assert cfg.trainer.max_epochs == 50 and cfg.trainer._target_ == "lightning.pytorch.Trainer"
    exp = compose_config(["experiment=default_weights"])
    assert exp.threads == 1 and exp.model.arch.depth >= 3
    with pytest.raises(ConfigError, match="data.nope"):
        compose_config(["data.nope=1"])


def test_fast_dev_run_writes_nonexpansive_weights(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    rc = main([*TINY, f"output_dir={out}", "data.kind=textured"])
    assert rc == 0
    weights = out / "dncnn_realsn.pt"
    report = json.loads((out / "dncnn_realsn.json").read_text())
    assert set(report["psnr_heldout_deadleaves"]) == {"5", "15", "25"}
    assert report["config"]["data"]["kind"] == ["textured"]
    model = load_denoiser(str(weights))
    assert model.arch.depth == 3 and model.arch.channels == 4
    assert lipschitz_bound(model) <= 1.0 + 1e-3
    assert report["lipschitz_bound"] == pytest.approx(lipschitz_bound(model))
    assert (out / "config.yaml").exists()
    with torch.no_grad():
        y = model(torch.rand(1, 1, 16, 16))
    assert torch.isfinite(y).all()
