"""Dead-leaves generator and data module: reproducible, covering, 8-bit values in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ptyframe_lightning.datamodule import DataConfig, DeadLeavesDataModule, clean_images
from ptyframe_lightning.deadleaves import (
    LeafParams,
    add_noise,
    dead_leaves,
    image_rng,
    leaf_labels,
    make_images,
    sample_radii,
)


@pytest.mark.parametrize("kind", ["diverse", "textured"])
def test_images_reproducible_in_range_and_8bit(kind: str) -> None:
    a = dead_leaves(image_rng(3, 7), kind)
    b = dead_leaves(image_rng(3, 7), kind)
    c = dead_leaves(image_rng(3, 8), kind)
    assert a.shape == (128, 128) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0.0 and a.max() <= 1.0
    levels = a * 255
    assert np.allclose(levels, np.rint(levels), atol=1e-4)
    assert len(np.unique(a)) > 20  # many leaves, not a flat canvas


def test_leaves_cover_the_canvas() -> None:
    labels = leaf_labels(image_rng(0, 0), 128)
    assert labels.min() >= 0
    assert labels.max() > 50  # covering 128 x 128 takes many leaves at these sizes
    # with too few draws the last leaf fills the holes: still covered
    few = leaf_labels(image_rng(0, 0), 64, LeafParams(max_leaves=3))
    assert few.min() >= 0 and few.max() <= 3


def test_diverse_leaves_are_flat_textured_are_not() -> None:
    rng_d, rng_t = image_rng(1, 2), image_rng(1, 2)
    labels = leaf_labels(image_rng(1, 2), 128)
    diverse = dead_leaves(rng_d, "diverse")
    textured = dead_leaves(rng_t, "textured")
    big = np.bincount(labels.ravel()).argmax()
    assert np.ptp(diverse[labels == big]) == 0.0
    assert np.ptp(textured[labels == big]) > 0.02


def test_power_law_radii() -> None:
    p = LeafParams(r_min=0.03, r_max=1.0, alpha=3.0)
    r = sample_radii(np.random.default_rng(0), 200_000, 128, p)
    r0, r1 = 0.03 * 128, 128.0
    assert r.min() >= r0 and r.max() <= r1
    # CDF of p(r) ~ r^-3 on [r0, r1]: F(r) = (r0^-2 - r^-2) / (r0^-2 - r1^-2)
    for q in (1.5 * r0, 3 * r0):
        expect = (r0**-2 - q**-2) / (r0**-2 - r1**-2)
        assert np.mean(r <= q) == pytest.approx(expect, abs=0.005)


def test_noise_fixed_and_blind() -> None:
    clean = np.full((4, 64, 64), 0.5, dtype=np.float32)
    noisy = add_noise(clean, 15 / 255, np.random.default_rng(0))
    assert np.std(noisy - clean) == pytest.approx(15 / 255, rel=0.02)
    blind = add_noise(clean, (5 / 255, 25 / 255), np.random.default_rng(1))
    stds = (blind - clean).std(axis=(1, 2))
    assert np.all(stds > 4 / 255) and np.all(stds < 26 / 255) and np.ptp(stds) > 1 / 255


def test_datamodule_batches_reproducible_and_cached(tmp_path: Path) -> None:
    cfg = DataConfig(
        n_train=4,
        n_val=2,
        patch_px=24,
        patches_per_image=2,
        batch_size=4,
        seed=5,
        cache=str(tmp_path / "dl.h5"),
    )
    dm = DeadLeavesDataModule(cfg)
    dm.setup("fit")
    noisy, clean = next(iter(dm.train_dataloader()))
    assert noisy.shape == clean.shape == (4, 1, 24, 24)
    assert float((noisy - clean).std()) == pytest.approx(15 / 255, rel=0.2)
    val_noisy, val_clean = next(iter(dm.val_dataloader()))
    assert val_clean.shape == (2, 1, 128, 128)
    assert (tmp_path / "dl.h5").exists()
    again = DeadLeavesDataModule(cfg)  # read back from the cache
    again.setup("fit")
    n2, c2 = next(iter(again.train_dataloader()))
    assert np.array_equal(n2.numpy(), noisy.numpy()) and np.array_equal(c2.numpy(), clean.numpy())
    assert np.allclose(
        clean_images(cfg), make_images(6, ["diverse", "textured"], seed=5), atol=1e-6
    )
    dm.train_set.set_epoch(1)  # a new epoch draws new crops and noise
    n3, _ = next(iter(dm.train_dataloader()))
    assert not np.array_equal(n3.numpy(), noisy.numpy())


def test_data_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="kind"):
        DataConfig(kind=["leaves"])
    with pytest.raises(ValueError, match="patch_px"):
        DataConfig(patch_px=200)
    with pytest.raises(ValueError, match="sigma"):
        DataConfig(sigma=20, sigma_max=10)
