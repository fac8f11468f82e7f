"""Hold out a random, seeded subset of patterns for validation without ground truth.

``data.validation_fraction = f`` keeps ``round(f n)`` of the ``n`` tiles out of every update:
the run's dataset becomes a ``TileSubset`` of the other tiles, and the held-out tiles ride
along as ``dataset.held_out`` (another lazy ``TileSubset`` of the same source). The data
error of the held-out patterns under the current object and probe
(``ptyframe.metrics.validation``) then scores a reconstruction on data it never fitted, the
cross-validation idea of the "free R-factor" in crystallography (Brunger, Nature 355, 472
(1992)). Which tiles are held out depends only on ``(n, f, seed)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ptyframe.data.dataset import PtychoDataset
from ptyframe.errors import ConfigError

#: Mixed into the seed so the held-out set does not share a stream with visiting orders.
_STREAM = 16


def check_fraction(fraction: float) -> None:
    """Raise ``ConfigError`` unless ``0 <= fraction < 0.5``."""
    f = float(fraction)
    if not (0.0 <= f < 0.5):
        raise ConfigError(
            f"data.validation_fraction = {fraction} must lie in [0, 0.5) (e.g. 0.05: 5 % of "
            "the patterns are held out of the updates to score the reconstruction)"
        )


def holdout_indices(n_tiles: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(train, held)``: sorted, disjoint tile indices covering ``range(n_tiles)``.

    ``held`` has ``round(fraction * n_tiles)`` tiles (at least 1 when ``fraction > 0``),
    drawn without replacement by a generator seeded with ``(seed, 16)``.
    """
    check_fraction(fraction)
    n = int(n_tiles)
    k = 0 if fraction <= 0 else max(1, int(round(float(fraction) * n)))
    if k and n - k < 1:
        raise ConfigError(f"data.validation_fraction = {fraction} leaves no pattern to fit")
    rng = np.random.default_rng([int(seed) % 2**63, _STREAM])
    held = np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)
    mask = np.ones(n, dtype=bool)
    mask[held] = False
    return np.nonzero(mask)[0].astype(np.int64), held


class TileSubset(PtychoDataset):
    """A lazy view of some tiles of another dataset (same object frame, same truth).

    ``tiles`` are indices into ``base``; patterns are read from ``base`` only when asked.
    """

    def __init__(self, base: PtychoDataset, tiles: Sequence[int] | np.ndarray) -> None:
        # no super().__init__: every attribute comes from ``base`` (no second copy of data)
        self.base = base
        self.tiles = np.asarray(tiles, dtype=np.int64)
        self.geometry = base.geometry.select(self.tiles)
        self.path = base.path
        self.quantity = base.quantity
        self.data_key = base.data_key
        self.layout = base.layout
        self.pipeline = base.pipeline
        self.conventions = dict(base.conventions)
        self._shape = (base.n_angles, len(self.tiles), *base.shape[2:])
        self._patterns = None
        self.held_out: TileSubset | None = None

    @property
    def has_truth(self) -> bool:
        return self.base.has_truth

    @property
    def truth(self) -> Any:
        return self.base.truth

    def intensities(
        self, angle: int = 0, indices: Sequence[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Return centred intensities of this view's tiles ``indices`` (all by default)."""
        sel = self.tiles if indices is None else self.tiles[np.asarray(indices, dtype=np.int64)]
        return self.base.intensities(angle, sel)


def split_validation(dataset: PtychoDataset, fraction: float, seed: int) -> PtychoDataset:
    """Return ``dataset`` without its held-out tiles (``.held_out``), or unchanged if f = 0."""
    train, held = holdout_indices(dataset.n_tiles, fraction, seed)
    if len(held) == 0:
        return dataset
    out = TileSubset(dataset, train)
    out.held_out = TileSubset(dataset, held)
    out.conventions["validation"] = {
        "fraction": float(fraction),
        "held_out_tiles": held.tolist(),
    }
    return out


def held_out_of(dataset: Any) -> PtychoDataset | None:
    """Return the held-out tiles of a run's dataset, or None (no validation split)."""
    return getattr(dataset, "held_out", None)
