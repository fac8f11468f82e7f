"""Write the self-contained ``report.html``: the table of runs and every figure (base64 PNG)."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from ptyframe.report.gather import Run, score

#: Table columns, in order; a column empty in every run is left out.
COLUMNS = (
    "engine",
    "inner",
    "alpha",
    "beta",
    "rho",
    "overlap",
    "decimate",
    "n_tiles",
    "i0_origin",
    "photons_per_pattern",
    "epochs",
    "epochs_done",
    "seconds",
    "data_error",
    "validation_error",
    "frc_quarter_nyquist",
    "frc_half_nyquist",
    "frc_3q_nyquist",
    "nrmse",
    "status",
)

#: Short table headers.
HEADERS = {
    "photons_per_pattern": "photons/pattern",
    "epochs_done": "done",
    "seconds": "time (s)",
    "data_error": "data error",
    "validation_error": "validation error",
    "frc_quarter_nyquist": "FRC 1/4 Nyq.",
    "frc_half_nyquist": "FRC 1/2 Nyq.",
    "frc_3q_nyquist": "FRC 3/4 Nyq.",
    "nrmse": "NRMSE",
    "n_tiles": "positions",
}

#: What each figure shows (by file stem prefix), shown under it.
CAPTIONS = {
    "heatmaps": "FRC at 1/2 Nyquist of the final object over the (alpha, beta) grid of each "
    "engine, shared colour range [0, 1]; red box = best (PINE paper Fig. 5).",
    "heatmap": "FRC at 1/2 Nyquist of the final object over the (alpha, beta) grid, shared "
    "colour range [0, 1]; red box = best (PINE paper Fig. 5). Without ground truth: the final "
    "data error.",
    "frc_curves": "FRC curves of each engine's best run: solid = largest epoch count, dashed = "
    "the same settings with fewer epochs; dotted lines at 1/2 and 3/4 Nyquist (Fig. 4).",
    "frc_vs_epoch": "FRC at 1/2 and 3/4 Nyquist per epoch of each engine's best run.",
    "frc_vs_time": "(a) cumulative computation time per epoch; (b) FRC at 3/4 Nyquist against "
    "computation time, best run per engine (Fig. 6).",
    "position_corrections": "Position corrections of a run that refined its positions: "
    "arrows from the recorded positions along the refined moves (mean move removed), drawn "
    "at the gain in the title, with the RMS of the moves.",
    "panels": "Amplitude (top) and phase (bottom) of the best run per engine and overlap ratio, "
    "cropped to the lit region, grey levels shared along a row (Figs. 7-8).",
}

STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#222;background:#fff}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em}
.wrap{max-height:32em;overflow:auto;border:1px solid #ccc;display:inline-block}
table{border-collapse:collapse;font-size:0.85em}
td,th{border:1px solid #ddd;padding:2px 7px;text-align:right;white-space:nowrap}
th{background:#eef;position:sticky;top:0} td.t{text-align:left}
tr.best td{background:#fff6cc;font-weight:600}
figure{display:inline-block;vertical-align:top;margin:0.8em 1.5em 0.8em 0;max-width:100%}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:0.85em;color:#444;max-width:60em}
p.common{font-size:0.9em;color:#333}"""


def write_html(
    runs: list[Run], figures: list[Path], out: Path, title: str, extra_html: str = ""
) -> Path:
    """Write ``out/report.html`` (summary, table sorted by engine then quality, figures).

    Columns empty in every run are left out; columns with one value in every run are shown
    once above the table; ``extra_html`` (e.g. the Optuna trials) goes after it. When
    ``heatmaps.png`` (all engines side by side) is among the figures, the per-engine heatmaps
    are left out of the page (they stay on disk).
    """
    cols = [c for c in COLUMNS if any(_shown(r.row.get(c)) for r in runs)]
    common = [c for c in cols if c != "engine" and len({_text(r.row.get(c), c) for r in runs}) == 1]
    cols = [c for c in cols if c not in common]
    best_ids = {id(max(g, key=score)) for g in _by_engine(runs).values()}
    rows = []
    for r in sorted(runs, key=lambda r: (str(r.row["engine"]), -score(r))):
        cells = "".join(_td(r.row.get(c), c) for c in cols)
        cls = ' class="best"' if id(r) in best_ids else ""
        rows.append(f"<tr{cls}>{cells}</tr>")
    statuses: dict[str, int] = {}
    for r in runs:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    shared = ", ".join(f"{c} = {_text(runs[0].row.get(c), c)}" for c in common)
    if any(p.name == "heatmaps.png" for p in figures):
        figures = [p for p in figures if not p.name.startswith("heatmap_")]
    figs = "".join(_figure(p) for p in figures)
    head = "".join(f"<th>{html.escape(HEADERS.get(c, c))}</th>" for c in cols)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(runs)} runs ({html.escape(summary)}). Highlighted: the best run of each engine (highest
FRC at 1/2 Nyquist, or lowest final data error without ground truth). Every value per run and
per recorded epoch is in <a href="report.csv">report.csv</a>.</p>
<p class="common">Common to all runs: {html.escape(shared) or "(nothing)"}.</p>
<h2>Runs</h2>
<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>
{extra_html}
<h2>Figures</h2>
{figs}
</body></html>
"""
    path = out / "report.html"
    path.write_text(page)
    return path


def _by_engine(runs: list[Run]) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(str(r.row["engine"]), []).append(r)
    return out


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    cap = next((v for k, v in CAPTIONS.items() if path.stem.startswith(k)), "")
    return (
        f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{html.escape(path.name)}</b>: {html.escape(cap)}</figcaption></figure>"
    )


def _shown(v: object) -> bool:
    if isinstance(v, float):
        return not math.isnan(v)
    return v not in (None, "")


def _text(v: object, col: str) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else (f"{v:.1f}" if col == "seconds" else f"{v:.4g}")
    return str(v if v is not None else "")


def _td(v: object, col: str) -> str:
    cls = ' class="t"' if col in ("engine", "inner", "status") else ""
    return f"<td{cls}>{html.escape(_text(v, col))}</td>"
