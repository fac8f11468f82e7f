"""Validation without truth: held-out tiles and their data error (ptyframe.data.holdout)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptyframe.data.holdout import holdout_indices, split_validation
from ptyframe.data.measurements import Measurements
from ptyframe.engines.pie import EpieConfig, PieEngine
from ptyframe.errors import ConfigError
from ptyframe.metrics.validation import ValidationSet
from ptyframe.state import ReconstructionState

from synth import focused_probe, make_dataset


def test_held_out_indices_are_deterministic_disjoint_and_cover() -> None:
    train, held = holdout_indices(200, 0.05, seed=3)
    again_train, again_held = holdout_indices(200, 0.05, seed=3)
    other = holdout_indices(200, 0.05, seed=4)[1]
    assert len(held) == 10 and len(train) == 190
    np.testing.assert_array_equal(held, again_held)
    np.testing.assert_array_equal(train, again_train)
    assert not set(held) & set(train)
    assert sorted(set(held) | set(train)) == list(range(200))
    assert not np.array_equal(held, other)  # the seed chooses them
    assert len(holdout_indices(200, 0.0, 3)[1]) == 0
    with pytest.raises(ConfigError, match="validation_fraction"):
        holdout_indices(200, 0.7, 3)


def test_split_dataset_keeps_held_out_patterns_out() -> None:
    ds = make_dataset(m=32, n=6, step=6.0)
    split = split_validation(ds, 0.1, seed=0)
    held = split.held_out
    assert held is not None
    assert split.n_tiles + held.n_tiles == ds.n_tiles == 36
    _, h_idx = holdout_indices(36, 0.1, 0)
    np.testing.assert_array_equal(held.intensities(0), ds.intensities(0, h_idx))
    np.testing.assert_array_equal(held.geometry.positions_px, ds.geometry.positions_px[h_idx])
    assert split.geometry.object_shape == ds.geometry.object_shape
    all_pos = {tuple(p) for p in split.geometry.positions_px}
    assert not any(tuple(p) in all_pos for p in held.geometry.positions_px)


def _state(ds, obj: np.ndarray, probe: np.ndarray) -> ReconstructionState:
    return ReconstructionState(
        torch.from_numpy(obj.astype(np.complex64)),
        torch.from_numpy(probe.astype(np.complex64)),
        torch.from_numpy(np.asarray(ds.geometry.positions_px)),
    )


def test_truth_scores_zero_on_noiseless_held_out_data() -> None:
    ds = split_validation(make_dataset(m=32, n=6, step=6.0, jitter=0.7), 0.1, seed=1)
    truth = ds.truth
    val = ValidationSet(ds.held_out)
    assert val.n == 4
    assert val.error(_state(ds, truth.object, truth.probe)) < 1e-5
    blurred = truth.object * np.exp(0.3j)  # a global phase changes nothing ...
    assert val.error(_state(ds, blurred, truth.probe)) < 1e-5
    wrong = np.ones_like(truth.object)  # ... a flat object misses the data
    assert val.error(_state(ds, wrong, truth.probe)) > 0.1


def test_validation_error_falls_as_epie_converges() -> None:
    ds = split_validation(make_dataset(m=32, n=7, step=6.0), 0.1, seed=0)
    val = ValidationSet(ds.held_out)
    meas = Measurements.from_dataset(ds)
    scale = float(np.abs(ds.truth.probe).max())
    state = _state(
        ds, np.ones((1, *ds.geometry.object_shape)), focused_probe(32, 0.5, 0.0)[None] * scale
    )
    engine = PieEngine(EpieConfig(epochs=60, alpha=0.5, beta=0.5))
    engine.prepare(meas, state, seed=0)
    errors = [val.error(state)]
    for epoch in range(60):
        engine.step(epoch)
        if (epoch + 1) % 20 == 0:
            errors.append(val.error(state))
    # measured: 0.85, 0.077, 0.064, 0.056 (start, after 20, 40, 60 sweeps)
    assert errors[0] > 0.5
    assert errors[-1] < 0.1 * errors[0]
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False))
