"""Run ``benchmarks/engines_table.py`` of an older checkout and of this one, interleaved.

Each round runs the older checkout's script, then this checkout's, as child processes (one
torch thread each, the same engines, sweeps and case), so the two share the machine's load
round by round. The table gives, per engine, the fastest round of each checkout's seconds per
sweep (a busy machine only ever slows a round down) and their ratio (now / then), the median
ratio over rounds beside it, and both checkouts' data error and FRC at 1/2
Nyquist from the last round (the quality must not move: the same case, seeds and defaults).

    python benchmarks/engines_before_after.py --old-tree ../before [--rounds 3] [--sweeps 20]
        [--engines epie rpie mpie minibatch_pie lsqml pine] [--page frame_engines_table]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _lib.results import Stamp, load_average, markdown_table, tree_commit, write_page
from _lib.runs import ONE_THREAD

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DISABLED = "ptyframe_raar.engines"


def run_table(tree: Path, sweeps: int, engines: list[str]) -> dict[str, list[str]]:
    """Run ``tree``'s engines table; return ``engine -> [s/sweep, data error, ..., FRC]``."""
    cmd = [sys.executable, str(tree / "benchmarks" / "engines_table.py"), "--sweeps", str(sweeps)]
    cmd += ["--engines", *engines]
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(tree)}
    # the venv's plugins are this checkout's: one built against newer engine contracts would
    # not import beside an older core (no engine of the table comes from a plugin)
    env["PTYFRAME_DISABLE_PLUGINS"] = DISABLED
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    rows: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and cells[0] in engines:
            rows[cells[0]] = cells[1:]
    missing = [e for e in engines if e not in rows]
    if proc.returncode != 0 or missing:  # a run that failed must not read as a fast one
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise SystemExit(f"{tree}: exit {proc.returncode}, no row for {missing}: {tail}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old-tree", required=True, help="an older checkout of ptyframe")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sweeps", type=int, default=20)
    ap.add_argument(
        "--engines", nargs="+", default=["epie", "rpie", "mpie", "minibatch_pie", "lsqml", "pine"]
    )
    ap.add_argument("--page", default="frame_engines_table", help="results page ('': none)")
    args = ap.parse_args()
    stamp = Stamp()
    old, new = Path(args.old_tree).resolve(), ROOT
    trees = {"then": old, "now": new}
    secs: dict[str, dict[str, list[float]]] = {t: {e: [] for e in args.engines} for t in trees}
    last: dict[str, dict[str, list[str]]] = {}
    loads = [load_average()]
    for r in range(args.rounds):
        for tag, tree in trees.items():
            rows = run_table(tree, args.sweeps, args.engines)
            for e in args.engines:
                secs[tag][e].append(float(rows[e][0]))
            last[tag] = rows
            print(f"round {r + 1} {tag}: " + ", ".join(f"{e} {rows[e][0]}" for e in args.engines))
        loads.append(load_average())
    header = [
        "engine",
        "s / sweep then",
        "s / sweep now",
        "now / then",
        "median round now / then",
        "data error then",
        "data error now",
        "FRC @ 1/2 then",
        "FRC @ 1/2 now",
    ]
    table = []
    for e in args.engines:
        t0, t1 = min(secs["then"][e]), min(secs["now"][e])  # the fastest round
        per_round = [y / x for x, y in zip(secs["then"][e], secs["now"][e], strict=True)]
        a, b = last["then"][e], last["now"][e]
        ratio, med = f"{t1 / t0:.2f}", f"{statistics.median(per_round):.2f}"
        table.append([e, f"{t0:.3f}", f"{t1:.3f}", ratio, med, a[1], b[1], a[-1], b[-1]])
    text = markdown_table(header, table)
    head = (
        f"then: `{tree_commit(old)}`; now: `{tree_commit(new)}`. {args.rounds} rounds, "
        f"{args.sweeps} sweeps each, the two checkouts alternating; load average "
        + ", ".join(loads)
        + " (before the first round, then after each)."
    )
    print(head + "\n\n" + text)
    if args.page:
        about = (
            "Every fast engine at its defaults on the natural-image case of "
            "`benchmarks/engines_table.py` (625 patterns of 128x128, 1e6 photons), an older "
            "checkout and this one alternating round by round in one invocation. Seconds per "
            "sweep: the fastest round's median sweep (metric steps included) of each checkout, "
            "and the median over rounds of the per-round ratio; data error and FRC (the "
            "registered `frc` metric at 1/2 Nyquist "
            "against the truth) from the last round. 2-core machine: above a load of about "
            "1 the runs share a core."
        )
        path = write_page(
            args.page, "Engines before and after, interleaved", head + "\n\n" + text, stamp, about
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
