"""ptyframe, PtyLab 0.3.7 and pty-chi 2.2.0 side by side on the same files.

    make peers                                   # once: .venv-ptylab, .venv-ptychi
    .venv/bin/python benchmarks/peers/compare.py [--quick] [--cases natural_1e6 lowdose]
        [--tools ptyframe PtyLab pty-chi] [--sweeps N] [--sweeps-for lowdose=300]
        [--threads 1] [--check-sweeps 10] [--out benchmarks/results/peers]

For every case (``_lib/cases.py``) the driver simulates one data-exchange file, then runs, on that
file and with the same thread count (``OMP_NUM_THREADS`` and each tool's own setting):

1. one truth-probe mapping check per tool: ePIE from the true probe (probe held fixed) and
   a vacuum object for ``--check-sweeps`` sweeps; its aligned shift must be ~0
   (``score.MAPPING_TOLERANCE_PX``), or the row says FAILED: a mapping error would otherwise
   pass as a poor reconstruction;
2. every engine of every tool from its own default start (ptyframe: every registered engine,
   ``engine=NAME`` with its defaults, disk probe, vacuum object; PtyLab: ePIE, mPIE; pty-chi:
   EPIE, LSQML, Autodiff), interleaved tool by tool so that load changes hit all alike.

Each tool runs as a subprocess in its own venv (``run_ptylab.py``, ``run_ptychi.py``; ptyframe
through ``ptyframe reconstruct``) and returns the object on ptyframe's frame; all are scored
by ``_lib/score.py`` (ptyframe's metrics). A run that raises, times out, produces NaN, or scores
like a constant object is a FAILED row with the reason. Rows are printed as they finish and
the table is written as ``OUT.csv`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _lib
from _lib.cases import cases
from _lib.score import Row, Truth, score

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

VENVS = {"ptyframe": ".venv", "PtyLab": ".venv-ptylab", "pty-chi": ".venv-ptychi"}
#: in this order (interleaved with ptyframe's epie, rpie, pine, ...): the runs a time-limited
#: table most needs come first
PEER_ENGINES = {"PtyLab": ["ePIE", "mPIE"], "pty-chi": ["LSQML", "EPIE", "Autodiff"]}
CHECK_ENGINE = {"ptyframe": "epie", "PtyLab": "ePIE", "pty-chi": "EPIE"}
PTYFRAME_FIRST = ["epie", "rpie", "pine"]


class RunFailed(Exception):
    """A tool's run did not produce a result; the message is the table's reason."""


def ptyframe_engines() -> list[str]:
    """Return ptyframe's registered engines, ePIE/rPIE/PINE first."""
    import ptyframe

    names = list(ptyframe.registry().names("engine"))
    return [n for n in PTYFRAME_FIRST if n in names] + sorted(set(names) - set(PTYFRAME_FIRST))


def venv_python(tool: str) -> Path:
    return ROOT / VENVS[tool] / "bin" / "python"


def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[key] = str(threads)
    env["MPLBACKEND"] = "Agg"
    return env


def call(cmd: list[str], threads: int, timeout_s: float, log: Path) -> None:
    """Run ``cmd``; raise ``RunFailed`` with the last error line on failure or timeout."""
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(
                cmd,
                cwd=ROOT,
                env=thread_env(threads),
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise RunFailed(f"FAILED: timed out after {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if "Error" in ln or "error" in ln or "Exception" in ln]
        last = (errors or lines or ["(no output)"])[-1]
        raise RunFailed(f"FAILED: exit {proc.returncode}: {last[:200]}")


def run_ptyframe(
    data: Path,
    engine: str,
    sweeps: int,
    threads: int,
    truth: bool,
    out: Path,
    timeout_s: float,
    reuse: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``ptyframe reconstruct`` with the engine's defaults; return (object, s/sweep)."""
    import h5py

    run_dir = out.with_suffix("")
    cmd = [
        str(ROOT / VENVS["ptyframe"] / "bin" / "ptyframe"),
        "reconstruct",
        "data=file",
        f"data.path={data}",
        f"engine={engine}",
        f"engine.epochs={sweeps}",
        f"threads={threads}",
        "metrics.every=0",
        "output.images=false",
        "output.checkpoint_every=0",
        "output.overwrite=true",
        f"output.dir={run_dir}",
        f"hydra.run.dir={run_dir}",
    ]
    if truth:
        cmd += ["init.probe=truth", "engine.fix_probe=true"]
    if not (reuse and (run_dir / "recon.h5").exists()):
        call(cmd, threads, timeout_s, out.with_suffix(".log"))
    with h5py.File(run_dir / "recon.h5", "r") as f:
        status, done = f.attrs.get("status", "?"), int(f.attrs.get("epochs_done", -1))
        if status != "finished":
            log = out.with_suffix(".log")
            why = [ln for ln in log.read_text(errors="replace").splitlines() if "error" in ln]
            detail = f": {why[-1].strip()[:160]}" if why else ""
            raise RunFailed(f"FAILED: ptyframe run {status} after {done} epochs{detail}")
        obj = np.asarray(f["object"])[0]
        seconds = np.asarray(f["history/seconds"]) if "history/seconds" in f else np.array([])
    return obj, seconds


def run_peer(
    tool: str,
    data: Path,
    engine: str,
    sweeps: int,
    threads: int,
    truth: bool,
    out: Path,
    timeout_s: float,
    reuse: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Run a peer's runner in its venv; return (object, seconds per sweep)."""
    script = HERE / ("run_ptylab.py" if tool == "PtyLab" else "run_ptychi.py")
    cmd = [
        str(venv_python(tool)),
        str(script),
        str(data),
        str(out),
        "--engine",
        engine,
        "--sweeps",
        str(sweeps),
        "--threads",
        str(threads),
    ]
    if truth:
        cmd.append("--truth-probe")
    if not (reuse and out.exists()):
        call(cmd, threads, timeout_s, out.with_suffix(".log"))
    res = np.load(out)
    return res["object"], res["seconds_per_sweep"]


def plan(
    case_sweeps: int, tools: list[str], check_sweeps: int, tool_sweeps: dict[str, int] | None = None
) -> list[tuple[str, str, int, bool]]:
    """Return the interleaved runs ``(tool, engine, sweeps, truth_probe)`` of one case.

    ``tool_sweeps`` overrides the sweeps of a tool's default-start runs (a reduced table).
    """
    runs = [(t, CHECK_ENGINE[t], check_sweeps, True) for t in tools if check_sweeps > 0]
    lists = {t: (ptyframe_engines() if t == "ptyframe" else PEER_ENGINES[t]) for t in tools}
    n = {t: int((tool_sweeps or {}).get(t, case_sweeps)) for t in tools}
    for i in range(max(len(v) for v in lists.values())):
        runs += [(t, lists[t][i], n[t], False) for t in tools if i < len(lists[t])]
    return runs


def one_run(args, case: str, data: Path, truth: Truth, spec, work: Path) -> Row:
    """Run and score one ``(tool, engine, sweeps, truth_probe)``."""
    tool, engine, sweeps, is_check = spec
    row = Row(case, tool, engine, "truth probe" if is_check else "default", sweeps, args.threads)
    if not venv_python(tool).exists():
        row.status = f"SKIPPED: {VENVS[tool]} absent (make peers)"
        return row
    out = work / f"{case}-{tool}-{engine}-{'truth' if is_check else 'default'}-{sweeps}.npz"
    if args.score_only and not (out.exists() or (out.with_suffix("") / "recon.h5").exists()):
        row.status = "not run (--score-only: no result in the workdir)"
        return row
    t0 = time.perf_counter()
    try:
        if tool == "ptyframe":
            obj, sec = run_ptyframe(
                data, engine, sweeps, args.threads, is_check, out, args.timeout, args.reuse
            )
        else:
            obj, sec = run_peer(
                tool, data, engine, sweeps, args.threads, is_check, out, args.timeout, args.reuse
            )
    except RunFailed as exc:
        row.status = str(exc)
        return row
    except Exception as exc:  # reading a broken result is a failure too
        row.status = f"FAILED: {type(exc).__name__}: {exc}"
        return row
    row.extra["wall_s"] = time.perf_counter() - t0
    return score(row, obj, np.asarray(sec), truth)


COLUMNS = [
    "case",
    "tool",
    "engine",
    "start",
    "sweeps",
    "threads",
    "seconds_per_sweep",
    "nrmse",
    "frc_0_25",
    "frc_0_5",
    "frc_0_75",
    "shift_y_px",
    "shift_x_px",
    "status",
]


def fmt(row: Row) -> list[str]:
    d = dataclasses.asdict(row)
    cells = []
    for key in COLUMNS:
        v = d[key]
        if isinstance(v, float):
            cells.append(
                "-" if v != v else (f"{v:+.2f}" if key.startswith("shift") else f"{v:.3f}")
            )
        else:
            cells.append(str(v))
    return cells


def write_tables(rows: list[Row], out: Path, header: str) -> None:
    """Write ``out.csv`` and ``out.md`` (the markdown table with the command line above it)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for r in rows:
            d = dataclasses.asdict(r)
            w.writerow([d[k] for k in COLUMNS])
    lines = [header, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(r)) + " |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small cases, few sweeps (smoke run)")
    p.add_argument("--cases", nargs="+", default=None, help="case names (default: all)")
    p.add_argument("--tools", nargs="+", default=list(VENVS), choices=list(VENVS))
    p.add_argument(
        "--engines",
        nargs="+",
        default=None,
        help="only these TOOL:ENGINE pairs, e.g. ptyframe:epie PtyLab:ePIE",
    )
    p.add_argument("--sweeps", type=int, default=None, help="sweeps for every case")
    p.add_argument("--sweeps-for", nargs="+", default=[], metavar="CASE=N")
    p.add_argument(
        "--tool-sweeps",
        nargs="+",
        default=[],
        metavar="[CASE:]TOOL=N",
        help="sweeps of one tool's runs in every case, or in one (a reduced table, e.g. "
        "pty-chi=20 lowdose:pty-chi=300)",
    )
    p.add_argument(
        "--check-sweeps",
        type=int,
        default=None,
        help="sweeps of the truth-probe mapping checks (0: none; default 10, quick 5)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    p.add_argument("--workdir", type=Path, default=ROOT / ".peers-work")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="score results already in the workdir (same case, tool, engine, start, sweeps) "
        "instead of running them again; their seconds per sweep are those measured then",
    )
    p.add_argument(
        "--score-only",
        action="store_true",
        help="with --reuse: run nothing, score what the workdir holds, list the rest as not run",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="table path without suffix (default benchmarks/results/peers[_quick])",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    args.reuse = args.reuse or args.score_only
    all_cases = cases(args.quick)
    names = args.cases or list(all_cases)
    unknown = set(names) - set(all_cases)
    if unknown:
        raise SystemExit(f"unknown case(s) {sorted(unknown)}; choose from {list(all_cases)}")
    per_case = dict(kv.split("=") for kv in args.sweeps_for)
    check = args.check_sweeps if args.check_sweeps is not None else (5 if args.quick else 10)
    out = args.out or ROOT / "benchmarks" / "results" / ("peers_quick" if args.quick else "peers")
    work = args.workdir / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    header = "command: " + " ".join(
        ["python", "benchmarks/peers/compare.py", *(argv or sys.argv[1:])]
    )
    print(header)
    print(f"threads per tool: {args.threads}; truth-probe checks: {check} sweeps")
    rows: list[Row] = []
    for name in names:
        case = all_cases[name]
        sweeps = int(per_case.get(name, args.sweeps or case.sweeps))
        data = case.simulate(work / f"{name}.h5")
        truth = Truth.read(data)
        print(
            f"\n== {name}: {data} ({sweeps} sweeps); a constant object scores NRMSE "
            f"{truth.constant_nrmse:.3f}, FRC " + ", ".join(f"{v:.3f}" for v in truth.constant_frc)
        )
        pairs = [kv.split("=") for kv in args.tool_sweeps]
        tool_sweeps = {k: int(v) for k, v in pairs if ":" not in k}
        tool_sweeps.update({k.split(":")[1]: int(v) for k, v in pairs if k.startswith(name + ":")})
        for spec in plan(sweeps, args.tools, check, tool_sweeps):
            if args.engines and f"{spec[0]}:{spec[1]}" not in args.engines and not spec[3]:
                continue
            row = one_run(args, name, data, truth, spec, work)
            rows.append(row)
            print(" | ".join(fmt(row)), flush=True)
            write_tables(rows, out, header)
    print(f"\ntable: {out.with_suffix('.md')} and {out.with_suffix('.csv')}")
    failed = [r for r in rows if r.status.startswith("FAILED")]
    print(
        f"{len(rows)} runs, {len(failed)} FAILED, "
        f"{sum(r.status.startswith('SKIPPED') for r in rows)} skipped"
    )
    return rows


if __name__ == "__main__":
    main()
