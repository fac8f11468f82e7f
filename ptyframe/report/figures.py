"""Draw the report's figures (after the PINE paper's Figs. 4-8) from gathered runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptyframe.io.images import _plt, _save
from ptyframe.report.gather import Run


def frc_heatmaps(runs: list[Run], out: Path) -> list[Path]:
    """FRC at half Nyquist over the (alpha, beta) grid, one heatmap per engine (Fig. 5).

    Without ground truth (no FRC), the final data error is shown instead.
    """
    plt = _plt()
    files = []
    key = "frc_half_nyquist" if any(key_in(r, "frc_half_nyquist") for r in runs) else "data_error"
    label = "FRC at 1/2 Nyquist" if key == "frc_half_nyquist" else "final data error"
    for engine in sorted({r.row["engine"] for r in runs}):
        mine = [r for r in runs if r.row["engine"] == engine and key_in(r, key)]
        alphas = sorted({float(r.row["alpha"]) for r in mine})
        betas = sorted({float(r.row["beta"]) for r in mine})
        if len(alphas) < 2 and len(betas) < 2:
            continue
        grid = np.full((len(betas), len(alphas)), np.nan)
        for r in mine:
            j, i = betas.index(float(r.row["beta"])), alphas.index(float(r.row["alpha"]))
            grid[j, i] = r.row[key]
        fig, ax = plt.subplots(figsize=(5.5, 4.6))
        im = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
        ax.set_yticks(range(len(betas)), [f"{b:g}" for b in betas])
        for (j, i), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(i, j, f"{v:.2f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xlabel("alpha")
        ax.set_ylabel("beta")
        ax.set_title(f"{engine}: {label}")
        fig.colorbar(im, ax=ax)
        files.append(_save(fig, out / f"heatmap_{engine}.png"))
    return files


def key_in(run: Run, key: str) -> bool:
    """Return whether ``run`` has a finite value for ``key``."""
    v = run.row.get(key)
    return isinstance(v, float) and v == v


def frc_vs_epoch(runs: list[Run], out: Path) -> Path | None:
    """Best run per engine: FRC at 1/2 Nyquist per epoch (cf. Fig. 4)."""
    return _best_curves(runs, out, "epoch", "frc_vs_epoch.png")


def frc_vs_time(runs: list[Run], out: Path) -> Path | None:
    """Best run per engine: FRC at 1/2 Nyquist against cumulative wall time (Fig. 6)."""
    return _best_curves(runs, out, "seconds", "frc_vs_time.png")


def _best_curves(runs: list[Run], out: Path, x: str, name: str) -> Path | None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = 0
    for engine in sorted({r.row["engine"] for r in runs}):
        mine = [r for r in runs if r.row["engine"] == engine and "frc_half_nyquist" in r.history]
        if not mine:
            continue
        best = max(mine, key=lambda r: np.nan_to_num(r.row.get("frc_half_nyquist", -1), nan=-1))
        y = best.history["frc_half_nyquist"]
        xs = np.cumsum(best.history["seconds"]) if x == "seconds" else best.history["epoch"] + 1
        ok = np.isfinite(y)
        ax.plot(
            xs[ok],
            y[ok],
            "o-",
            ms=3,
            label=f"{engine} ({best.row['alpha']:g}, {best.row['beta']:g})",
        )
        drawn += 1
    if not drawn:
        _plt().close(fig)
        return None
    ax.set_xlabel("wall time (s)" if x == "seconds" else "epoch")
    ax.set_ylabel("FRC at 1/2 Nyquist")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, out / name)


def panels(runs: list[Run], out: Path, max_runs: int = 8) -> Path:
    """Amplitude and phase of the best run per (engine, overlap) (cf. Figs. 7-8)."""
    plt = _plt()
    groups: dict[tuple[str, str], Run] = {}
    for r in runs:
        ov = r.row.get("overlap", float("nan"))
        label = f"overlap {ov:g}" if ov == ov else f"decimate {r.row.get('decimate', 1)}"
        key = (r.row["engine"], label)
        score = np.nan_to_num(r.row.get("frc_half_nyquist", -np.inf), nan=-np.inf)
        if key not in groups or score > np.nan_to_num(
            groups[key].row.get("frc_half_nyquist", -np.inf), nan=-np.inf
        ):
            groups[key] = r
    chosen = list(groups.items())[:max_runs]
    fig, axes = plt.subplots(2, len(chosen), figsize=(3.2 * len(chosen), 6.4), squeeze=False)
    for i, ((engine, dec), r) in enumerate(chosen):
        obj = np.prod(r.object, axis=0) if r.object.ndim == 3 else r.object
        obj = obj * np.exp(-1j * np.angle(np.mean(obj)))
        axes[0, i].imshow(np.abs(obj), cmap="gray")
        axes[0, i].set_title(f"{engine}, {dec}\namplitude")
        axes[1, i].imshow(np.angle(obj), cmap="twilight_shifted")
        axes[1, i].set_title("phase")
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    return _save(fig, out / "panels.png")
