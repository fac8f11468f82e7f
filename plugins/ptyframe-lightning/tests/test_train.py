"""Training entry point: Hydra composition, a tiny Lightning fit, exported weights, the hook."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_fast_dev_run_writes_nonexpansive_weights(tmp_path: Path) -> None:
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


def test_cpl_family_trains_blind_and_exports_a_certified_denoiser(tmp_path: Path) -> None:
    from ptyframe.denoise.cpl import CplDenoiser
    from ptyframe.denoise.cpl import lipschitz_bound as cpl_bound

    out = tmp_path / "cpl"
    tiny = [a for a in TINY if not a.startswith("model.")]
    overrides = [*tiny, "model=cpl", "model.arch.depth=2", "model.arch.hidden_channels=4"]
    overrides += ["model.init=null"]  # the DCT start needs >= 24 filters
    overrides += ["data.sigma=0", "data.sigma_max=50", f"output_dir={out}", "weights_name=c.pt"]
    assert main(overrides) == 0
    report = json.loads((out / "c.json").read_text())
    model = load_denoiser(str(out / "c.pt"))
    assert isinstance(model, CplDenoiser) and model.arch.depth == 2
    assert cpl_bound(model) <= 1.0
    assert report["denoiser_lipschitz_bound"] == pytest.approx(cpl_bound(model))
    assert report["certificate"]["family"] == "cpl"
    assert report["config"]["data"]["sigma_max"] == 50.0


def test_experiments_for_cpu_and_gpu_compose(tmp_path: Path) -> None:
    from ptyframe_lightning.train import resume_path

    cpu = compose_config(["experiment=cpl_blind_cpu"])
    assert cpu.model.arch.family == "cpl" and (cpu.data.sigma, cpu.data.sigma_max) == (0, 50)
    s15 = compose_config(["experiment=cpl_sigma15_cpu"])
    assert s15.data.sigma == 15 and s15.data.sigma_max is None and s15.model.arch.family == "cpl"
    paper = compose_config(["experiment=gpu_paper"])
    assert (paper.model.arch.depth, paper.model.arch.channels) == (17, 64)
    assert paper.trainer.precision == "bf16-mixed" and paper.trainer.max_epochs == 50
    assert paper.data.n_train == 1000 and paper.resume == "last"
    gpu = compose_config(["experiment=gpu_cpl"])
    assert gpu.model.arch.family == "cpl" and gpu.model.arch.depth == 16
    long = compose_config(["experiment=cpl_blind_cpu_long"])
    assert (long.model.arch.depth, long.model.arch.hidden_channels) == (12, 64)
    assert long.model.grow == "cpl_blind" and (long.data.sigma, long.data.sigma_max) == (0, 50)
    assert long.callbacks.checkpoint.every_n_epochs == 1 and long.resume == "last"
    assert resume_path("last", tmp_path) is None  # nothing to resume yet: start afresh
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert resume_path("last", tmp_path) == str(tmp_path / "checkpoints" / "last.ckpt")
    assert resume_path(None, tmp_path) is None
    with pytest.raises(ConfigError, match="resume"):
        resume_path(str(tmp_path / "nope.ckpt"), tmp_path)


def test_dct_start_only_for_cpl() -> None:
    from ptyframe_lightning.module import DenoiserModule

    arch = {"family": "cpl", "depth": 2, "hidden_channels": 48, "kernel_size": 5}
    module = DenoiserModule(arch=arch, init="dct")
    assert float(module.model.steps()[0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="family=cpl"):
        DenoiserModule(arch={"depth": 3, "channels": 4}, init="dct")
    with pytest.raises(ValueError, match="unknown"):
        DenoiserModule(arch=arch, init="orthogonal")
    with pytest.raises(ValueError, match="cpl weights"):
        DenoiserModule(arch=arch, init="dct", grow="dncnn_realsn_default")


def test_grow_starts_training_from_the_shipped_cpl_net() -> None:
    from ptyframe_lightning.module import DenoiserModule

    arch = {"family": "cpl", "depth": 6, "hidden_channels": 56, "kernel_size": 5}
    module = DenoiserModule(arch=arch, init="dct", grow="cpl_blind")
    source = load_denoiser("cpl_blind")
    x = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(0))
    module.model.eval()
    with torch.no_grad():
        diff = (module.model(x) - source(x)).abs().max()
        assert diff < 5e-3 < (source(x) - x).abs().max()
