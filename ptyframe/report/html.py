"""Write the self-contained ``report.html`` (figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from ptyframe.report.gather import Run

COLUMNS = (
    "engine",
    "alpha",
    "beta",
    "rho",
    "decimate",
    "epochs",
    "seconds",
    "data_error",
    "frc_half_nyquist",
    "frc_3q_nyquist",
    "nrmse",
    "status",
)


def write_html(runs: list[Run], figures: list[Path], out: Path, title: str) -> Path:
    """Return the path of the written page (table of runs, then every figure)."""
    rows = []
    for r in sorted(
        runs, key=lambda r: (str(r.row["engine"]), -float(r.row.get("frc_half_nyquist", 0) or 0))
    ):
        cells = "".join(f"<td>{_cell(r.row.get(c, ''))}</td>" for c in COLUMNS)
        rows.append(f"<tr>{cells}</tr>")
    imgs = "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{p.stem}</figcaption></figure>'
        for p in figures
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;}} table{{border-collapse:collapse;}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right;}} th{{background:#eee;}}
figure{{display:inline-block;margin:1em;}} img{{max-width:560px;}}</style></head><body>
<h1>{html.escape(title)}</h1><p>{len(runs)} runs.</p>
<table><tr>{"".join(f"<th>{c}</th>" for c in COLUMNS)}</tr>{"".join(rows)}</table>
<h2>Figures</h2>{imgs}</body></html>"""
    path = out / "report.html"
    path.write_text(page)
    return path


def _cell(v: object) -> str:
    if isinstance(v, float):
        return "" if v != v else f"{v:.4g}"
    return html.escape(str(v))
