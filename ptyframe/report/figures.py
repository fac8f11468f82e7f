"""Draw the report's figures (after the PINE paper's Figs. 4-8) from gathered runs.

Every function takes the runs and the output directory and returns the PNG paths it wrote
(none when the runs hold nothing to draw). "Best" means the highest FRC at 1/2 Nyquist, or
the lowest final data error where there is no ground truth (``gather.score``). Runs are
grouped by the settings that differ between them (dose, overlap, rho, ...; see
``gather.varying_settings``), so one report can hold several studies.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ptyframe.io.images import pyplot, save_figure
from ptyframe.report.gather import Run, has_frc, label, score, variant, varying_settings

#: Line colours per engine (the paper's: blue ePIE, green rPIE, yellow PINE).
COLOURS = {"epie": "tab:blue", "rpie": "tab:green", "pine": "goldenrod", "raar": "tab:red"}


def _engine_order(engine: str) -> tuple[int, str]:
    """Sort key: the paper's order ePIE, rPIE, PINE, then other engines by name."""
    order = ("epie", "rpie", "pine")
    return (order.index(engine) if engine in order else len(order), engine)


def _colour(engine: str, i: int) -> str:
    return COLOURS.get(engine, f"C{(i + 4) % 10}")


def _groups(runs: list[Run], keys: tuple[str, ...]) -> dict[tuple, list[Run]]:
    out: dict[tuple, list[Run]] = {}
    for r in runs:
        out.setdefault((r.row["engine"], *variant(r, keys)), []).append(r)
    return out


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text).strip("_")


def frc_heatmaps(runs: list[Run], out: Path) -> list[Path]:
    """Map FRC at 1/2 Nyquist over the (alpha, beta) grid, one PNG per engine (Fig. 5).

    Runs that differ in another setting (epochs, dose, overlap, ...) get their own heatmap.
    All FRC maps share the colour range [0, 1]; without ground truth the final data error is
    mapped instead. The best cell is outlined. With grids of two or more engines,
    ``heatmaps.png`` also shows them side by side, one row per setting group (as Fig. 5).
    """
    plt = pyplot()
    frc = has_frc(runs)
    key = "frc_half_nyquist" if frc else "data_error"
    files: list[Path] = []
    keys = ("epochs", *varying_settings(runs))
    per_engine: dict[str, int] = {}
    drawn: list[tuple[tuple, str, list[Run]]] = []
    for (engine, *rest), mine in sorted(_groups(runs, keys).items(), key=lambda kv: str(kv[0])):
        alphas, betas, grid = grid_of(mine, key)
        if (len(alphas) < 2 and len(betas) < 2) or not is_grid(mine):
            continue  # one point, or scattered trials (``trials.trial_figures`` draws those)
        drawn.append((tuple(rest), engine, mine))
        fig, ax = plt.subplots(figsize=(1.0 + 0.55 * max(len(alphas), 6), 4.8))
        _heatmap(fig, ax, mine, key, f"{engine}\n{label(mine[0], keys)}")
        n = per_engine.get(engine, 0)
        per_engine[engine] = n + 1
        name = f"heatmap_{_safe(engine)}" + (f"_{n + 1}" if n else "") + ".png"
        files.append(save_figure(fig, out / name))
    if len({e for _, e, _ in drawn}) >= 2:
        rows = sorted({v for v, _, _ in drawn}, key=str)
        cols = max(sum(v == r for v, _, _ in drawn) for r in rows)
        fig, axes = plt.subplots(
            len(rows), cols, figsize=(5.2 * cols, 4.6 * len(rows)), squeeze=False
        )
        for ri, r in enumerate(rows):
            row = sorted(((e, g) for v, e, g in drawn if v == r), key=lambda t: _engine_order(t[0]))
            for ci in range(cols):
                if ci >= len(row):
                    axes[ri, ci].axis("off")
                    continue
                e, g = row[ci]
                _heatmap(fig, axes[ri, ci], g, key, f"{e}\n{label(g[0], keys)}")
        fig.tight_layout()
        files.append(save_figure(fig, out / "heatmaps.png"))
    return files


def _heatmap(fig, ax, runs: list[Run], key: str, title: str) -> None:
    """Draw the (alpha, beta) map of ``key`` on ``ax`` with values written in the cells."""
    plt = pyplot()
    frc = key != "data_error"
    alphas, betas, grid = grid_of(runs, key)
    kw = {"vmin": 0.0, "vmax": 1.0, "cmap": "viridis"} if frc else {"cmap": "viridis_r"}
    im = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", **kw)
    ax.set_xticks(range(len(alphas)), [rounded(a) for a in alphas])
    ax.set_yticks(range(len(betas)), [rounded(b) for b in betas])
    small = 7 if len(alphas) > 6 else 9
    stopped = _diverged_cells(runs, alphas, betas)
    for (j, i), v in np.ndenumerate(grid):
        if np.isfinite(v):
            ax.text(
                i,
                j,
                (f"{v:.2f}" if frc else f"{v:.3g}") + ("\ndiv." if stopped[j, i] else ""),
                ha="center",
                va="center",
                color="w" if (not frc or v < 0.6) else "k",
                fontsize=small - 1 if stopped[j, i] else small,
            )
        if stopped[j, i]:  # the divergence guard stopped it: the value is its last good state
            ax.add_patch(
                plt.Rectangle((i - 0.5, j - 0.5), 1, 1, fill=False, hatch="//", ec="0.7", lw=0)
            )
    if np.isfinite(grid).any():
        j, i = np.unravel_index(np.nanargmax(grid) if frc else np.nanargmin(grid), grid.shape)
        ax.add_patch(plt.Rectangle((i - 0.5, j - 0.5), 1, 1, fill=False, ec="r", lw=2))
    ax.set_xlabel("alpha (object step)")
    ax.set_ylabel("beta (probe step)")
    what = "FRC at 1/2 Nyquist" if frc else "final data error"
    ax.set_title(f"{title.splitlines()[0]}: {what}\n{''.join(title.splitlines()[1:])}", fontsize=10)
    fig.colorbar(im, ax=ax)


def _diverged_cells(runs: list[Run], alphas: list[float], betas: list[float]) -> np.ndarray:
    """Return ``[n_beta, n_alpha]`` booleans: the grid points whose run diverged."""
    out = np.zeros((len(betas), len(alphas)), dtype=bool)
    for r in runs:
        a, b = float(r.row.get("alpha", math.nan)), float(r.row.get("beta", math.nan))
        if r.row.get("status") == "diverged" and a in alphas and b in betas:
            out[betas.index(b), alphas.index(a)] = True
    return out


def rounded(value: float) -> str:
    """Return a tick or legend label: at most three significant figures (``0.117``, ``1e+04``)."""
    return f"{value:.3g}"


def is_grid(runs: list[Run]) -> bool:
    """Return whether the runs' (alpha, beta) pairs fill at least half of their grid.

    A sweep over a grid (``+sweep=alpha_beta``, reduced grids with a few cells left out) is;
    Optuna's trials, each at its own continuous (alpha, beta), are not: mapped on the grid of
    their values they would leave all but one cell per row empty.
    """
    pairs = {
        (float(r.row["alpha"]), float(r.row["beta"]))
        for r in runs
        if not math.isnan(r.row.get("alpha", math.nan))
    }
    alphas, betas = {a for a, _ in pairs}, {b for _, b in pairs}
    return len(pairs) >= 0.5 * len(alphas) * len(betas)


def grid_of(runs: list[Run], key: str) -> tuple[list[float], list[float], np.ndarray]:
    """Return ``(alphas, betas, values [n_beta, n_alpha])`` of ``key`` over the runs' grid.

    Runs without an alpha are left out; a missing grid point is NaN.
    """
    mine = [r for r in runs if not math.isnan(r.row.get("alpha", math.nan))]
    alphas = sorted({float(r.row["alpha"]) for r in mine})
    betas = sorted({float(r.row["beta"]) for r in mine})
    grid = np.full((len(betas), len(alphas)), np.nan)
    for r in mine:
        j, i = betas.index(float(r.row["beta"])), alphas.index(float(r.row["alpha"]))
        grid[j, i] = r.row.get(key, np.nan)
    return alphas, betas, grid


def _best(runs: list[Run]) -> Run:
    return max(runs, key=score)


def _same_steps(a: Run, b: Run) -> bool:
    """Return whether ``a`` and ``b`` used the same alpha and beta (NaN = not used)."""
    return all(
        a.row[k] == b.row[k] or (math.isnan(a.row[k]) and math.isnan(b.row[k]))
        for k in ("alpha", "beta")
    )


def _steps(run: Run) -> str:
    """Return ``" (alpha, beta)"`` (or ``" (beta)"``) of ``run``, empty if it has neither."""
    vals = [f"{run.row[k]:g}" for k in ("alpha", "beta") if not math.isnan(run.row[k])]
    return f" ({', '.join(vals)})" if vals else ""


def frc_curves(runs: list[Run], out: Path) -> Path | None:
    """Plot the final FRC curves of each engine's best run, at every epoch count (Fig. 4).

    One panel per setting that differs between runs (e.g. dose). In a panel, each engine's
    best (alpha, beta) at its largest epoch count is drawn solid; runs with the same settings
    and fewer epochs (e.g. 150 of 300) dashed.
    """
    plt = pyplot()
    have = [r for r in runs if r.frc_curve is not None]
    if not have:
        return None
    keys = varying_settings(have)
    panels: dict[tuple, list[Run]] = {}
    for r in have:
        panels.setdefault(variant(r, keys), []).append(r)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.4), squeeze=False)
    for ax, (_, mine) in zip(
        axes[0], sorted(panels.items(), key=lambda kv: str(kv[0])), strict=True
    ):
        engines = sorted({r.row["engine"] for r in mine}, key=_engine_order)
        for e_i, engine in enumerate(engines):
            of = [r for r in mine if r.row["engine"] == engine]
            top = max(r.row["epochs"] for r in of)
            best = _best([r for r in of if r.row["epochs"] == top])
            same = [r for r in of if _same_steps(r, best)]
            for r in sorted(same, key=lambda r: -r.row["epochs"]):
                f, c = r.frc_curve  # type: ignore[misc]
                style = "-" if r.row["epochs"] == top else "--"
                ax.plot(  # ring 0 (zero frequency) carries no information: left out
                    f[1:] * 1e-6,
                    c[1:],
                    style,
                    color=_colour(engine, e_i),
                    label=f"{engine}{_steps(r)} {r.row['epochs']} it.",
                )
        nyq = 0.5 / mine[0].pixel_size_m * 1e-6 if math.isfinite(mine[0].pixel_size_m) else None
        if nyq:
            for frac in (0.5, 0.75):
                ax.axvline(frac * nyq, color="0.6", ls=":", lw=1)
            ax.set_xlim(0, nyq)
        ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.02)
        ax.set_xlabel("spatial frequency (1/um)")
        ax.set_ylabel("FRC")
        ax.set_title(label(mine[0], keys) or "FRC of the final objects", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, out / "frc_curves.png")


def _best_per_group(runs: list[Run]) -> tuple[list[Run], tuple[str, ...]]:
    keys = varying_settings(runs)
    best = []
    for _, mine in sorted(_groups(runs, keys).items(), key=lambda kv: str(kv[0])):
        top = max(r.row["epochs"] for r in mine)
        best.append(_best([r for r in mine if r.row["epochs"] == top]))
    return best, keys


def frc_vs_epoch(runs: list[Run], out: Path) -> Path | None:
    """Plot FRC at 1/2 and 3/4 Nyquist per epoch of each engine's best run (cf. Fig. 4)."""
    plt = pyplot()
    with_frc = [r for r in runs if np.isfinite(r.history.get("frc_half_nyquist", [np.nan])).any()]
    if not with_frc:
        return None
    best, keys = _best_per_group(with_frc)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, r in enumerate(best):
        x = r.history["epoch"] + 1
        for ax, key in zip(axes, ("frc_half_nyquist", "frc_3q_nyquist"), strict=True):
            y = r.history.get(key)
            if y is None:
                continue
            ok = np.isfinite(y)
            ax.plot(
                x[ok],
                y[ok],
                marker="o",
                ms=2.5,
                color=_colour(r.row["engine"], i),
                ls=["-", "--", ":", "-."][_style(r, best, keys)],
                label=_legend(r, keys),
            )
    for ax, what in zip(axes, ("1/2", "3/4"), strict=True):
        ax.set_xlabel("epoch (sweeps)")
        ax.set_ylabel(f"FRC at {what} Nyquist")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    return save_figure(fig, out / "frc_vs_epoch.png")


def frc_vs_time(runs: list[Run], out: Path) -> Path | None:
    """Plot wall time per epoch and FRC at 3/4 Nyquist against wall time (Fig. 6 a, b).

    Wall time is the cumulative sum of ``/history/seconds`` (the engine's epoch time, metrics
    excluded). Without ground truth, panel (b) shows the data error instead.
    """
    plt = pyplot()
    have = [r for r in runs if "seconds" in r.history and len(r.history["seconds"])]
    if not have:
        return None
    frc = has_frc(have)
    best, keys = _best_per_group(have)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    key = "frc_3q_nyquist" if frc else "data_error"
    for i, r in enumerate(best):
        t = np.cumsum(np.nan_to_num(r.history["seconds"]))
        colour, ls = _colour(r.row["engine"], i), ["-", "--", ":", "-."][_style(r, best, keys)]
        a.plot(r.history["epoch"] + 1, t, color=colour, ls=ls, label=_legend(r, keys))
        y = r.history.get(key, np.full_like(t, np.nan))
        ok = np.isfinite(y)
        b.plot(t[ok], y[ok], marker="o", ms=2.5, color=colour, ls=ls, label=_legend(r, keys))
    a.set_xlabel("epoch (sweeps)")
    a.set_ylabel("computational time (s)")
    b.set_xlabel("computational time (s)")
    b.set_ylabel("FRC at 3/4 Nyquist" if frc else "data error")
    if not frc:
        b.set_yscale("log")
    for ax in (a, b):
        ax.grid(True, alpha=0.3)
    a.legend(fontsize=8)
    return save_figure(fig, out / "frc_vs_time.png")


def _style(run: Run, best: list[Run], keys: tuple[str, ...]) -> int:
    """Return a line-style index per variant (dose, overlap, ...) so engines keep colours."""
    variants = sorted({variant(r, keys) for r in best}, key=str)
    return variants.index(variant(run, keys)) % 4


def _legend(run: Run, keys: tuple[str, ...]) -> str:
    extra = label(run, keys)
    return f"{run.row['engine']}{_steps(run)}" + (f", {extra}" if extra else "")


def _crop(run: Run) -> tuple[slice, slice]:
    illum = run.illumination()
    if not illum.any():
        return slice(None), slice(None)
    ys, xs = np.nonzero(illum >= 0.1 * illum.max())
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def panels(runs: list[Run], out: Path) -> Path | None:
    """Show amplitude and phase of the best runs (Figs. 7-8; Fig. 3 without an overlap study).

    With two or more overlap ratios (or decimations): columns are the ratios, highest first,
    and each engine has an amplitude row and a phase row. Otherwise one column per engine and
    setting group (e.g. dose) over two rows. Each image is cropped to the region lit by
    >= 10 % of the maximum total probe intensity; amplitudes are divided by their median and
    the global phase is removed (neither is fixed by blind ptychography); grey levels
    (1st-99th percentile) are shared along a row.
    """
    if not runs:
        return None
    engines = sorted({r.row["engine"] for r in runs}, key=_engine_order)
    by = ""
    for key in ("overlap", "decimate"):
        if len({r.row[key] for r in runs if r.row[key] == r.row[key]}) > 1:
            by = key
            break
    if by:
        levels = sorted(
            {r.row[by] for r in runs if r.row[by] == r.row[by]}, reverse=by == "overlap"
        )
        heads = [f"{by} {lv:g}" for lv in levels]
        grid = [
            [
                _best_or_none([r for r in runs if r.row["engine"] == e and r.row[by] == lv])
                for lv in levels
            ]
            for e in engines
        ]
        return _draw_panels(grid, heads, out, with_engine_titles=True)
    keys = varying_settings(runs)
    groups = sorted(
        _groups(runs, keys).items(), key=lambda kv: (_engine_order(kv[0][0]), str(kv[0][1:]))
    )
    best = [_best(mine) for _, mine in groups]
    heads = [label(r, keys) for r in best]
    cells: list[Run | None] = list(best)
    return _draw_panels([cells], heads, out, with_engine_titles=True)


def _best_or_none(runs: list[Run]) -> Run | None:
    return _best(runs) if runs else None


def _draw_panels(
    grid: list[list[Run | None]], heads: list[str], out: Path, with_engine_titles: bool
) -> Path:
    """Draw ``grid`` (rows of runs) as amplitude/phase image pairs; ``heads`` per column."""
    plt = pyplot()
    n_cols = len(heads)
    fig, axes = plt.subplots(
        2 * len(grid), n_cols, figsize=(2.7 * n_cols + 0.6, 2.6 * 2 * len(grid)), squeeze=False
    )
    for gi, cells in enumerate(grid):
        imgs: list[tuple[np.ndarray, np.ndarray] | None] = []
        for r in cells:
            if r is None:
                imgs.append(None)
                continue
            sy, sx = _crop(r)
            obj = r.object_2d[sy, sx]
            # blind ptychography fixes neither the object's scale nor its global phase
            obj = obj * np.exp(-1j * np.angle(np.mean(obj))) / max(np.median(np.abs(obj)), 1e-30)
            imgs.append((np.abs(obj), np.angle(obj)))
        for part, name in ((0, "amplitude"), (1, "phase (rad)")):
            have = [im[part].ravel() for im in imgs if im is not None]
            lo, hi = np.percentile(np.concatenate(have), [1, 99]) if have else (0.0, 1.0)
            for ci, (r, im) in enumerate(zip(cells, imgs, strict=True)):
                ax = axes[2 * gi + part, ci]
                ax.set_xticks([])
                ax.set_yticks([])
                if im is None or r is None:
                    ax.axis("off")
                    continue
                shown = ax.imshow(im[part], cmap="gray", vmin=lo, vmax=hi)
                if part == 0:
                    title = f"{r.row['engine']}{_steps(r)}" if with_engine_titles else ""
                    ax.set_title(f"{title}\n{heads[ci]}".strip(), fontsize=9)
                if ci == 0:
                    ax.set_ylabel(name, fontsize=9)
                if ci == n_cols - 1:
                    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
    fig.tight_layout()
    return save_figure(fig, out / "panels.png")


def position_corrections(runs: list[Run], out: Path) -> list[Path]:
    """Draw ``position_corrections_<run>.png`` for each run that refined its positions
    (``/extras/position_corrections_px`` in its ``recon.h5``; ``ptyframe.io
    .correction_images``)."""
    import h5py

    from ptyframe.io.correction_images import position_corrections_image

    files = []
    for i, run in enumerate(runs):
        with h5py.File(run.path, "r") as f:
            if "extras/position_corrections_px" not in f:
                continue
            moves = np.asarray(f["extras/position_corrections_px"], dtype=np.float64)
        refined = np.asarray(run.positions_px, dtype=np.float64)
        name = str(run.config.get("engine", {}).get("name", "run"))
        path = out / f"position_corrections_{i + 1}_{_safe(name)}.png"
        files.append(position_corrections_image(refined - moves, refined, path, name))
    return files
