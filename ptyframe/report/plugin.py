"""Register the ``ptyframe report`` subcommand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ptyframe.errors import PtyframeError
from ptyframe.hookspecs import hookimpl


def main(argv: list[str]) -> int:
    """Gather a run or multirun directory into report.csv, figures and report.html."""
    from ptyframe.report import figures
    from ptyframe.report.gather import load_runs, write_csv
    from ptyframe.report.html import write_html
    from ptyframe.report.trials import trial_figures, trial_rows, trials_html, trials_text

    ap = argparse.ArgumentParser(
        prog="ptyframe report",
        description=main.__doc__,
        epilog="Finds every recon.h5 below DIR. Writes report.csv (one row per run), "
        "heatmap_<engine>.png (grids), trials.png and trials_history.png (Optuna), "
        "frc_curves.png, frc_vs_epoch.png, frc_vs_time.png, panels.png, "
        "position_corrections_<n>_<engine>.png (each when the runs "
        "hold what it needs) and report.html (self-contained).",
    )
    ap.add_argument("dir", help="a run directory, a multirun directory or a recon.h5")
    ap.add_argument("--out", default=None, help="output directory (default: DIR/report)")
    args = ap.parse_args(argv)
    try:
        runs = load_runs(args.dir)
        root = Path(args.dir)
        out = Path(args.out) if args.out else (root.parent if root.is_file() else root) / "report"
        out.mkdir(parents=True, exist_ok=True)
        csv_path = write_csv(runs, out / "report.csv")
        figs = figures.frc_heatmaps(runs, out)
        for fig in (
            figures.frc_curves(runs, out),
            figures.frc_vs_epoch(runs, out),
            figures.frc_vs_time(runs, out),
            figures.panels(runs, out),
        ):
            if fig is not None:
                figs.append(fig)
        figs.extend(figures.position_corrections(runs, out))
        trials, params = trial_rows(runs, root)  # an Optuna sweep (+sweep=tune_*)
        if trials:
            print(f"Optuna trials (* = best):\n{trials_text(trials, params)}")
            figs.extend(trial_figures(trials, params, out))
        page = write_html(
            runs, figs, out, f"ptyframe report: {root.resolve().name}", trials_html(trials, params)
        )
    except PtyframeError as exc:
        print(f"ptyframe: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"ptyframe: {len(runs)} runs -> {csv_path}, {len(figs)} figures, {page}", file=sys.stderr)
    return 0


@hookimpl
def ptyframe_commands() -> dict[str, object]:
    """Offer ``ptyframe report DIR``."""
    return {"report": main}
