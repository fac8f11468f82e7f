"""LightningModule that trains a RealSN denoiser (DnCNN or ``cpl``) with the MSE of PINE eq. 21.

Loss (Yamada et al. 2024, eq. 21; Zhang et al. 2017): ``||Y - (X - R(X))||^2`` averaged over
pixels (the mean instead of the sum only rescales the learning rate), where ``R`` is the
network's noise prediction and ``D = Id - R`` (``ptyframe.denoise.dncnn``). Every training
forward pass runs one power-iteration step per layer (RealSN, Ryu et al. 2019), so the
normalisation follows the weights step by step. Adam with a step learning-rate schedule (Ryu
et al.'s defaults: lr 1e-3, divided by 10 half-way).

Logged: ``train_loss``, ``train_psnr`` (per step and epoch), ``val_loss``, ``val_psnr`` (dB on
[0, 1] images, mean over images), ``lipschitz_bound`` (product of the rigorous per-layer norm
bounds of the weights training currently uses, ``ptyframe.denoise.dncnn.lipschitz_bound``;
for the ``cpl`` family (``arch.family=cpl``, ``ptyframe.denoise.cpl``) the bound on ``D``
itself, ``prod_k max(1, t_k S_k^2 - 1)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from ptyframe.denoise.cpl import CplDenoiser, grow_from, init_dct_shrinkage
from ptyframe.denoise.cpl import lipschitz_bound as cpl_bound
from ptyframe.denoise.dncnn import DnCNN, lipschitz_bound
from ptyframe.denoise.models import build_model, make_arch


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return the mean PSNR in dB of images ``x`` vs ``y`` ``[B, C, H, W]`` with peak 1."""
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return (-10.0 * torch.log10(mse)).mean()


class DenoiserModule(pl.LightningModule):
    """Train ``DnCNN``/``CplDenoiser(arch, realsn=True)``; ``export()`` gives the certified net."""

    def __init__(
        self,
        arch: dict[str, Any] | None = None,
        lr: float = 1e-3,
        lr_milestones: Sequence[int] = (25,),
        lr_gamma: float = 0.1,
        power_px: int = 32,
        channels_last: bool = True,
        init: str | None = None,
        grow: str | None = None,
    ) -> None:
        super().__init__()
        arch = dict(arch or {})
        self.save_hyperparameters(
            {
                "arch": make_arch(arch).to_dict(),
                "lr": float(lr),
                "lr_milestones": [int(m) for m in lr_milestones],
                "lr_gamma": float(lr_gamma),
                "power_px": int(power_px),
                "channels_last": bool(channels_last),
                "init": init,
                "grow": grow,
            }
        )
        self.model = build_model(arch, realsn=True, power_px=power_px)
        if init == "dct":  # cpl only: start as sliding-DCT shrinkage (cpl.init_dct_shrinkage)
            if not isinstance(self.model, CplDenoiser):
                raise ValueError("model.init=dct needs model.arch.family=cpl")
            init_dct_shrinkage(self.model)
        elif init is not None:
            raise ValueError(f"model.init={init!r} unknown; use null or dct")
        if grow:  # cpl only: the first layers start as the exported net `grow` (cpl.grow_from)
            self._grow(grow)
        self.channels_last = channels_last and not torch.cuda.is_available()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def _grow(self, grow: str) -> None:
        from ptyframe.denoise.weights import load_denoiser

        source = load_denoiser(grow)
        if not (isinstance(self.model, CplDenoiser) and isinstance(source, CplDenoiser)):
            raise ValueError(f"model.grow={grow!r} needs a cpl model and cpl weights")
        grow_from(self.model, source)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        noisy, clean = batch
        den = self(noisy)
        loss = F.mse_loss(den, clean)
        on_step = stage == "train"
        self.log(f"{stage}_loss", loss, on_step=on_step, on_epoch=True, prog_bar=True)
        self.log(f"{stage}_psnr", psnr(den.detach(), clean), on_step=on_step, on_epoch=True)
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> Any:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def on_train_epoch_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        ds = getattr(dm, "train_set", None)
        if ds is not None and hasattr(ds, "set_epoch"):
            ds.set_epoch(self.current_epoch)

    def on_validation_epoch_end(self) -> None:
        if isinstance(self.model, CplDenoiser):
            self.log("lipschitz_bound", cpl_bound(self.model, grid=64))
        else:
            self.log("lipschitz_bound", lipschitz_bound(self.model, grid=64))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=list(self.hparams.lr_milestones), gamma=self.hparams.lr_gamma
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def export(self, grid: int = 128) -> DnCNN | CplDenoiser:
        """Return a plain ``DnCNN`` on the CPU with every layer divided by its exact bound."""
        self.model.eval()
        out = self.model.exported(grid).cpu()
        return out.to(memory_format=torch.contiguous_format).eval()
