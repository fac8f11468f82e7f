"""``ptyframe train-denoiser``: train the nonexpansive DnCNN on dead-leaves images.

Usage (Hydra overrides; groups ``data``, ``model``, ``trainer``, ``experiment``)::

    ptyframe train-denoiser
    ptyframe train-denoiser trainer.max_epochs=50 data.sigma=15 data.kind=diverse,textured
    ptyframe train-denoiser model=dncnn17 trainer.accelerator=gpu
    ptyframe train-denoiser experiment=default_weights      # the shipped weights' CPU run
    ptyframe train-denoiser experiment=cpl_blind_cpu output_dir=runs/cpl resume=last
    ptyframe train-denoiser experiment=gpu_paper output_dir=runs/paper resume=last  # on a GPU
    python -m ptyframe_lightning.train --cfg                # print the composed config

The config is composed with Hydra's compose API from ``pkg://ptyframe_lightning.conf``
(``train_denoiser.yaml``). A comma list given to ``data.kind`` is read as a list, not as a
multirun sweep. ``trainer``, ``loggers`` and ``callbacks`` are instantiated from their
``_target_``. Writes into ``output_dir``: ``config.yaml`` (resolved), Lightning checkpoints
(``checkpoints/``), CSV and TensorBoard logs, the final exactly normalised weights
``weights_name`` (a ptyframe weights file, ``ptyframe.denoise.weights``) and a json report
beside it (PSNR before/after on the held-out images at ``report_sigmas``, per-layer operator
norms, Lipschitz bound, wall time, resolved config, versions).
"""

from __future__ import annotations

import json
import logging
import platform
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from ptyframe.errors import ConfigError, PtyframeError

log = logging.getLogger(__name__)

CONFIG_MODULE = "ptyframe_lightning.conf"
CONFIG_NAME = "train_denoiser"
#: Overrides whose comma-separated values are lists, not Hydra sweeps.
LIST_KEYS = ("data.kind", "model.lr_milestones", "report_sigmas")


def fix_list_overrides(argv: list[str]) -> list[str]:
    """Turn ``data.kind=a,b`` into ``data.kind=[a,b]`` for the keys in ``LIST_KEYS``."""
    out = []
    for arg in argv:
        m = re.match(r"^(\+{0,2})([\w.]+)=(.*)$", arg)
        if m and m.group(2) in LIST_KEYS:
            val = m.group(3)
            if "," in val and not val.startswith("["):
                arg = f"{m.group(1)}{m.group(2)}=[{val}]"
        out.append(arg)
    return out


def compose_config(overrides: list[str]) -> Any:
    """Return the composed ``DictConfig`` for ``overrides`` (raises ``ConfigError``)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("now"):
        OmegaConf.register_new_resolver("now", lambda fmt: datetime.now().strftime(fmt))
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return compose(config_name=CONFIG_NAME, overrides=fix_list_overrides(overrides))
    except Exception as exc:  # hydra raises several types for bad overrides
        msg = " ".join(str(exc).split())
        raise ConfigError(f"train-denoiser: {msg} See `ptyframe train-denoiser --help`.") from None


def evaluate_psnr(
    model: Any, clean: np.ndarray, sigmas: list[float], seed: int = 12345
) -> dict[str, dict[str, float]]:
    """Return ``{sigma: {psnr_in, psnr_out, gain}}`` (dB, mean over ``clean [n, H, W]``)."""
    import torch

    from ptyframe_lightning.deadleaves import add_noise

    out: dict[str, dict[str, float]] = {}
    for s in sigmas:
        noisy = add_noise(clean, float(s) / 255.0, np.random.default_rng([seed, int(s * 100)]))
        with torch.no_grad():
            den = model(torch.from_numpy(noisy)[:, None].float())[:, 0].double().numpy()
        p_in = np.mean(-10 * np.log10(np.mean((noisy - clean) ** 2, axis=(1, 2))))
        p_out = np.mean(-10 * np.log10(np.mean((den - clean) ** 2, axis=(1, 2))))
        out[f"{s:g}"] = {
            "psnr_in": round(float(p_in), 3),
            "psnr_out": round(float(p_out), 3),
            "gain": round(float(p_out - p_in), 3),
        }
    return out


def run(cfg: Any) -> dict[str, Any]:
    """Train with the composed config ``cfg``; return the report (also written as json)."""
    import lightning.pytorch as pl
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from ptyframe.denoise.models import arch_record, certificate
    from ptyframe.denoise.weights import save_weights

    from ptyframe_lightning.datamodule import DataConfig, DeadLeavesDataModule, kinds_list
    from ptyframe_lightning.module import DenoiserModule

    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    resolved["data"]["kind"] = kinds_list(resolved["data"]["kind"])
    out_dir = Path(resolved["output_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))
    if resolved.get("threads"):
        torch.set_num_threads(int(resolved["threads"]))
    pl.seed_everything(int(resolved["seed"]), workers=True)

    data = dict(resolved["data"])
    try:
        data_cfg = DataConfig(**data)
        module = DenoiserModule(**resolved["model"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"train-denoiser: {exc}") from None
    dm = DeadLeavesDataModule(data_cfg)
    loggers = [instantiate(v) for v in (cfg.get("loggers") or {}).values() if v]
    callbacks = [instantiate(v) for v in (cfg.get("callbacks") or {}).values() if v]
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)

    ckpt = resume_path(resolved.get("resume"), out_dir)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
    wall = time.perf_counter() - t0

    net = module.export()
    cert = certificate(net)
    sigmas = [float(s) for s in resolved.get("report_sigmas", [5, 15, 25])]
    report: dict[str, Any] = {
        "arch": arch_record(net),
        # the network's bound for a DnCNN (as before), the bound on D for cpl
        "lipschitz_bound": cert.get("network_lipschitz_bound", cert["denoiser_lipschitz_bound"]),
        "denoiser_lipschitz_bound": cert["denoiser_lipschitz_bound"],
        "certificate": cert,
        "layer_norm_bounds": cert["layer_norm_bounds"],
        "psnr_heldout_deadleaves": evaluate_psnr(net, dm.val_images(), sigmas),
        "n_heldout": int(data_cfg.n_val),
        "train_wall_s": round(wall, 1),
        "global_steps": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "final_metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "config": resolved,
        "versions": _versions(),
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    weights = out_dir / str(resolved["weights_name"])
    keep = ("lipschitz_bound", "denoiser_lipschitz_bound", "global_steps")
    save_weights(net, weights, report={k: report[k] for k in keep}, certificate=cert)
    weights.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    log.info("wrote %s (Lipschitz bound %.6f)", weights, report["lipschitz_bound"])
    return report


def resume_path(resume: Any, out_dir: Path) -> str | None:
    """Return the checkpoint to resume from: ``resume`` = null, ``last`` or a path.

    ``last`` resumes from ``output_dir/checkpoints/last.ckpt`` when it exists (and starts
    afresh when it does not), so the same command both starts and continues a run.
    """
    if resume in (None, "", False):
        return None
    if str(resume) == "last":
        last = out_dir / "checkpoints" / "last.ckpt"
        return str(last) if last.exists() else None
    path = Path(str(resume)).expanduser()
    if not path.exists():
        raise ConfigError(f"train-denoiser: resume={resume!r} does not exist; use last or a .ckpt")
    return str(path)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("ptyframe", "ptyframe-lightning", "torch", "lightning", "hydra-core", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _usage() -> str:
    conf = Path(__file__).resolve().parent / "conf"
    groups = []
    for g in sorted(p for p in conf.iterdir() if p.is_dir() and not p.name.startswith("_")):
        names = ", ".join(sorted(p.stem for p in g.glob("*.yaml")))
        groups.append(f"  {g.name}: {names}")
    return (
        __doc__.split("\n\n")[0].strip()
        + "\n\n"
        + "\n".join(__doc__.split("\n\n")[1:3])
        + "\n\nConfig groups:\n"
        + "\n".join(groups)
        + "\n\nFlags: --cfg (print the composed config and exit), -h/--help\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Train the nonexpansive DnCNN denoiser on dead-leaves images (Lightning; Hydra overrides)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(_usage())
        return 0
    show = "--cfg" in args
    overrides = [a for a in args if a != "--cfg"]
    cfg = compose_config(overrides)
    if show:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(cfg))
        return 0
    report = run(cfg)
    table = report["psnr_heldout_deadleaves"]
    print(f"weights: {Path(report['config']['output_dir']) / report['config']['weights_name']}")
    print(f"Lipschitz bound (product of layer norms): {report['lipschitz_bound']:.6f}")
    print(f"bound on Lip(D): {report['denoiser_lipschitz_bound']:.6f}")
    for s, row in table.items():
        print(f"sigma {s:>4}/255: PSNR {row['psnr_in']:.2f} -> {row['psnr_out']:.2f} dB")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PtyframeError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
