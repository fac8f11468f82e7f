"""The trials of an Optuna sweep (``+sweep=tune_epie``, ``tune_pine``) as one table.

hydra-optuna-sweeper writes ``optimization_results.yaml`` (``best_params``, ``best_value``)
into the sweep directory and one job directory per trial, numbered in launch order. Each
trial's row: its number, the values of the tuned parameters (the keys of ``best_params``,
read from the trial's config), its final ``validation_error`` (the objective) and, when the
data has a ground truth, its FRC at 1/2 Nyquist; the best trial is marked.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import yaml

from ptyframe.report.gather import Run

RESULTS_FILE = "optimization_results.yaml"


def _dotted(cfg: dict[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.lstrip("+").split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _trial_number(run: Run, root: Path) -> int | None:
    try:
        rel = run.path.parent.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    first = rel.parts[0] if rel.parts else ""
    return int(first) if first.isdigit() else None


def trial_rows(runs: list[Run], root: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Return (rows sorted by trial number, tuned parameter names); empty if no Optuna study."""
    root = Path(root)
    results = root / RESULTS_FILE
    if not results.is_file():
        return [], []
    best = yaml.safe_load(results.read_text()) or {}
    params = [str(k) for k in (best.get("best_params") or {})]
    best_params = best.get("best_params") or {}
    rows = []
    for run in runs:
        num = _trial_number(run, root)
        if num is None:
            continue
        row: dict[str, Any] = {"trial": num}
        for p in params:
            row[p] = _dotted(run.config, p)
        row["validation_error"] = run.row.get("validation_error", float("nan"))
        row["frc_half_nyquist"] = run.row.get("frc_half_nyquist", float("nan"))
        row["status"] = run.status
        row["best"] = all(_close(row[p], best_params[p]) for p in params)
        rows.append(row)
    return sorted(rows, key=lambda r: r["trial"]), params


def _close(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return a == b


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def trials_text(rows: list[dict[str, Any]], params: list[str]) -> str:
    """Return the trials as a plain-text table (``*`` marks the best trial)."""
    cols = ["trial", *params, "validation_error", "frc_half_nyquist", "status"]
    lines = ["  ".join(f"{c:>16s}" for c in cols)]
    for r in rows:
        mark = " *" if r["best"] else ""
        lines.append("  ".join(f"{_fmt(r[c]):>16s}" for c in cols) + mark)
    return "\n".join(lines)


def trials_html(rows: list[dict[str, Any]], params: list[str]) -> str:
    """Return the trials as an HTML section (empty string when there are none)."""
    if not rows:
        return ""
    cols = ["trial", *params, "validation_error", "frc_half_nyquist", "status"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        ("<tr class='best'>" if r["best"] else "<tr>")
        + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols)
        + "</tr>"
        for r in rows
    )
    return (
        "<h2>Optuna trials</h2><p>Objective: the final validation error (data error of the "
        "held-out patterns, minimised); highlighted: Optuna's best trial.</p>"
        f"<div class='wrap'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
        "</table></div>"
    )


def objective(rows: list[dict[str, Any]]) -> tuple[str, str, bool]:
    """Return (row key, axis label, lower is better) of the values to draw for the trials.

    The validation error is Optuna's objective (minimised); trials without one (a sweep run
    without held-out patterns) are drawn by their FRC at 1/2 Nyquist against the truth.
    """
    if any(math.isfinite(float(r["validation_error"])) for r in rows):
        return "validation_error", "final validation error (objective)", True
    return "frc_half_nyquist", "FRC at 1/2 Nyquist", False


def _numeric(rows: list[dict[str, Any]], params: list[str]) -> list[str]:
    out = []
    for p in params:
        try:
            [float(r[p]) for r in rows]
        except (TypeError, ValueError):
            continue
        out.append(p)
    return out


def trial_figures(rows: list[dict[str, Any]], params: list[str], out: Path) -> list[Path]:
    """Draw Optuna's trials: ``trials.png`` and ``trials_history.png``; return their paths.

    ``trials.png``: each trial as a point over two tuned parameters (every pair of them, at
    most three panels; one parameter: against the objective), coloured by the objective,
    the best trial ringed. ``trials_history.png``: the objective of each trial in launch
    order and the best so far (Optuna's optimisation history). Ticks and the colour bar are
    matplotlib's rounded ones.
    """
    import numpy as np

    from ptyframe.io.images import pyplot, save_figure

    numeric = _numeric(rows, params)
    key, what, lower = objective(rows)
    values = np.array([float(r[key]) for r in rows])
    if len(rows) < 2 or not numeric or not np.isfinite(values).any():
        return []
    plt = pyplot()
    best = int(np.nanargmin(values) if lower else np.nanargmax(values))
    cmap = "viridis_r" if lower else "viridis"
    pairs = [(a, b) for i, a in enumerate(numeric) for b in numeric[i + 1 :]][:3]
    if not pairs:
        pairs = [(numeric[0], key)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.6 * len(pairs) + 1.0, 4.0), squeeze=False)
    scatter = None
    for ax, (px, py) in zip(axes[0], pairs, strict=True):
        x = np.array([float(r[px]) for r in rows])
        y = np.array([float(r[py]) for r in rows])
        scatter = ax.scatter(x, y, c=values, cmap=cmap, s=46, edgecolors="0.3", linewidths=0.5)
        ax.scatter(x[best], y[best], s=170, facecolors="none", edgecolors="r", linewidths=2)
        ax.set_xlabel(px.split(".")[-1])
        ax.set_ylabel(what if py == key else py.split(".")[-1])
        ax.grid(alpha=0.3)
    fig.colorbar(scatter, ax=list(axes[0]), label=what)
    fig.suptitle(f"{len(rows)} trials, coloured by the objective; ringed: the best")
    files = [save_figure(fig, out / "trials.png")]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    order = np.array([r["trial"] for r in rows])
    ax.plot(order, values, "o", color="tab:blue", label="trial")
    running = np.fmin.accumulate(values) if lower else np.fmax.accumulate(values)
    ax.step(order, running, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(what)
    ax.set_title("optimisation history")
    ax.grid(alpha=0.3)
    ax.legend()
    files.append(save_figure(fig, out / "trials_history.png"))
    return files
