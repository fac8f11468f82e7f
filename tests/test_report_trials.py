"""Optuna's trials are drawn as a scatter and a history, grids as heatmaps, labels rounded.

Would catch trials at continuous (alpha, beta) drawn on a grid of their values (a heatmap
with all but one cell per row empty and unrounded, overlapping tick labels), a reduced grid
no longer drawn as one, the objective read from the wrong column, and a tick label with more
than three significant figures.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ptyframe.report.figures import is_grid, rounded
from ptyframe.report.trials import objective, trial_figures


def _runs(pairs):
    return [SimpleNamespace(row={"alpha": a, "beta": b}) for a, b in pairs]


def test_a_grid_is_a_grid_and_trials_are_not() -> None:
    grid = [(a, b) for a in (0.1, 0.3, 0.5) for b in (0.1, 0.3, 0.5)]
    assert is_grid(_runs(grid))
    assert is_grid(_runs(grid[:-2]))  # a reduced grid with cells left out
    rng = np.random.default_rng(0)
    trials = [tuple(v) for v in rng.uniform(0.05, 1.0, (12, 2))]
    assert not is_grid(_runs(trials))


def test_labels_are_rounded() -> None:
    assert rounded(0.11683456) == "0.117"
    assert rounded(0.25) == "0.25"
    assert rounded(10000.0) == "1e+04"


@pytest.mark.parametrize("with_validation", [True, False])
def test_trial_figures_draw_the_scatter_and_the_history(tmp_path, with_validation) -> None:
    rng = np.random.default_rng(1)
    rows = []
    for i, (a, b) in enumerate(rng.uniform(0.05, 1.0, (8, 2))):
        err = 0.05 + 0.01 * abs(a - 0.3) + 0.01 * b
        rows.append(
            {
                "trial": i,
                "engine.alpha": float(a),
                "engine.beta": float(b),
                "validation_error": err if with_validation else float("nan"),
                "frc_half_nyquist": 0.5 - err,
                "status": "finished",
                "best": False,
            }
        )
    key, _, lower = objective(rows)
    assert (key, lower) == (
        ("validation_error", True) if with_validation else ("frc_half_nyquist", False)
    )
    files = trial_figures(rows, ["engine.alpha", "engine.beta"], tmp_path)
    assert [f.name for f in files] == ["trials.png", "trials_history.png"]
    for f in files:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 5000
    assert trial_figures(rows[:1], ["engine.alpha", "engine.beta"], tmp_path) == []
