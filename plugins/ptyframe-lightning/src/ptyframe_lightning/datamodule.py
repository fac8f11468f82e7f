"""Serve (noisy, clean) dead-leaves pairs to Lightning: patches for training, whole images for val.

Clean images: ``n_train`` training and ``n_val`` validation images (indices ``0..n_train-1`` and
``n_train..n_train+n_val-1`` of the set with ``seed``, kinds cycled over ``kind``), generated
in memory or read from / written to an HDF5 cache (``cache``: ``/clean`` uint8
``[n, size, size]`` with the generation settings as attributes; a cache whose settings differ
is regenerated). The paper used 500 DL-Diverse + 500 DL-Textured 128 x 128 images.

Training items: a random ``patch_px`` crop of a random training image, randomly rotated by a
multiple of 90 degrees and flipped (``augment``), with fresh Gaussian noise; item ``i`` of epoch
``e`` is drawn from ``default_rng([seed, e, i])`` so a run is reproducible while every epoch
sees new crops and noise. ``patches_per_image`` sets the epoch length. Noise ``sigma`` is on
the 8-bit scale (15 = the paper's 15/255 on [0, 1]); ``sigma_max`` > ``sigma`` draws one sigma
per patch uniformly in ``[sigma, sigma_max]`` (blind training).

Validation items: whole images with noise fixed by ``(seed + 1, index)``, at ``val_sigma``
(default: ``sigma``, or the middle of the blind range).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ptyframe_lightning.deadleaves import KINDS, add_noise, make_images

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    """Settings of the dead-leaves data (Hydra group ``data``)."""

    kind: list[str] = field(default_factory=lambda: ["diverse", "textured"])
    n_train: int = 1000
    n_val: int = 32
    size: int = 128
    sigma: float = 15.0
    sigma_max: float | None = None
    val_sigma: float | None = None
    patch_px: int = 40
    patches_per_image: int = 16
    batch_size: int = 128
    augment: bool = True
    seed: int = 0
    cache: str | None = None
    num_workers: int = 0

    def __post_init__(self) -> None:
        kinds = [self.kind] if isinstance(self.kind, str) else list(self.kind)
        bad = [k for k in kinds if k not in KINDS]
        if not kinds or bad:
            raise ValueError(f"data.kind must list some of {KINDS}, got {kinds}")
        self.kind = kinds
        if self.n_train < 1 or self.n_val < 1:
            raise ValueError("data.n_train and data.n_val must be >= 1")
        if not 8 <= self.patch_px <= self.size:
            raise ValueError(f"data.patch_px must lie in [8, data.size={self.size}]")
        if self.sigma < 0 or (self.sigma_max is not None and self.sigma_max < self.sigma):
            raise ValueError("need 0 <= data.sigma <= data.sigma_max (8-bit units)")

    def noise(self) -> float | tuple[float, float]:
        """Return the training sigma on the [0, 1] scale (a range for blind training)."""
        if self.sigma_max is None or self.sigma_max == self.sigma:
            return self.sigma / 255.0
        return (self.sigma / 255.0, self.sigma_max / 255.0)

    def validation_sigma(self) -> float:
        """Return the validation sigma on the [0, 1] scale."""
        if self.val_sigma is not None:
            return self.val_sigma / 255.0
        hi = self.sigma if self.sigma_max is None else self.sigma_max
        return 0.5 * (self.sigma + hi) / 255.0


def clean_images(cfg: DataConfig) -> np.ndarray:
    """Return all ``n_train + n_val`` clean images, float32 ``[n, size, size]`` in [0, 1]."""
    n = cfg.n_train + cfg.n_val
    attrs = {"kind": ",".join(cfg.kind), "n": n, "size": cfg.size, "seed": cfg.seed, "v": 1}
    if cfg.cache:
        import h5py

        path = Path(cfg.cache)
        if path.exists():
            with h5py.File(path, "r") as f:
                same = "clean" in f and all(str(f.attrs.get(k)) == str(v) for k, v in attrs.items())
                if same:
                    return f["clean"][...].astype(np.float32) / 255.0
            log.info("dead-leaves cache %s has other settings; regenerating", path)
        imgs = make_images(n, cfg.kind, cfg.size, cfg.seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with h5py.File(tmp, "w") as f:
            f.create_dataset("clean", data=np.rint(imgs * 255).astype(np.uint8), compression="gzip")
            for k, v in attrs.items():
                f.attrs[k] = v
        tmp.replace(path)
        return imgs
    return make_images(n, cfg.kind, cfg.size, cfg.seed)


class PatchDataset(Dataset):
    """Random noisy/clean patch pairs ``([1, P, P], [1, P, P])`` float32; see module docstring."""

    def __init__(self, images: np.ndarray, cfg: DataConfig) -> None:
        self.images = images
        self.cfg = cfg
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.images) * self.cfg.patches_per_image

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.epoch, int(i)])
        img = self.images[int(rng.integers(len(self.images)))]
        p = cfg.patch_px
        y, x = rng.integers(0, img.shape[0] - p + 1), rng.integers(0, img.shape[1] - p + 1)
        clean = img[y : y + p, x : x + p]
        if cfg.augment:
            clean = np.rot90(clean, int(rng.integers(4)))
            if rng.random() < 0.5:
                clean = clean[:, ::-1]
        clean = np.ascontiguousarray(clean)
        noisy = add_noise(clean, cfg.noise(), rng)
        return torch.from_numpy(noisy)[None], torch.from_numpy(clean)[None]


class ImageDataset(Dataset):
    """Whole images with fixed noise: ``([1, H, W], [1, H, W])`` float32."""

    def __init__(self, images: np.ndarray, sigma: float, seed: int) -> None:
        self.clean = images
        self.noisy = np.stack(
            [add_noise(im, sigma, np.random.default_rng([seed, i])) for i, im in enumerate(images)]
        )

    def __len__(self) -> int:
        return len(self.clean)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.noisy[i])[None], torch.from_numpy(self.clean[i])[None]


class DeadLeavesDataModule(pl.LightningDataModule):
    """LightningDataModule of dead-leaves denoising pairs (train: patches, val: images)."""

    def __init__(self, cfg: DataConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.train_set: PatchDataset | None = None
        self.val_set: ImageDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        imgs = clean_images(self.cfg)
        n = self.cfg.n_train
        self.train_set = PatchDataset(imgs[:n], self.cfg)
        self.val_set = ImageDataset(imgs[n:], self.cfg.validation_sigma(), self.cfg.seed + 1)

    def val_images(self) -> np.ndarray:
        """Return the held-out clean validation images ``[n_val, size, size]``."""
        self.setup()
        assert self.val_set is not None
        return self.val_set.clean

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        # items are random draws already (seeded by epoch and index): no shuffling needed;
        # workers are re-created every epoch so they see the current ``epoch``
        return DataLoader(
            self.train_set,
            batch_size=self.cfg.batch_size,
            shuffle=False,
            num_workers=self.cfg.num_workers,
            drop_last=len(self.train_set) > self.cfg.batch_size,
        )

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None
        return DataLoader(self.val_set, batch_size=8, shuffle=False)


def kinds_list(kind: str | Sequence[str]) -> list[str]:
    """Return ``kind`` as a list (a ``"a,b"`` string is split at commas)."""
    if isinstance(kind, str):
        return [k.strip() for k in kind.split(",") if k.strip()]
    return [str(k) for k in kind]
