"""Time and memory of big scans: ptyframe in memory, ptyframe streamed, PtyLab 0.3.7.

Cases (``--cases``; simulated, written to a temporary folder that is removed at the end):

=========  ==========  ======  ==============================================
name       patterns    window  raster
=========  ==========  ======  ==============================================
625        25 x 25     128     16 px step
3364       58 x 58     128     16 px step
1024x256   32 x 32     256     32 px step
14641      121 x 121   128     16 px step
=========  ==========  ======  ==============================================

Each case is a real far-field data set: a ``natural`` phantom (1/f^2 random amplitude and
phase), the ``focused`` probe, 1 px of stage jitter rounded to whole pixels (PtyLab rounds
positions), 1e6 photons per pattern, Poisson noise, stored as ``--dtype`` (float32, or the
integer counts a photon-counting detector stores). The patterns are computed and written chunk
by chunk (``ptyframe.simulation.large``: the patterns ``ptyframe simulate`` makes, without
holding them all).

Rows, each one child process (``--sweeps`` sweeps, one thread for the sweep, seed 0):

* ``ptyframe memory``: ``ptyframe reconstruct data.path=F engine=epie`` (no truth metrics,
  no checkpoints, no images): float32 amplitudes in memory, or the counts in their stored
  dtype where it is narrower (``--dtype uint16``);
* ``ptyframe stream``: the same with ``data.stream=true`` (patterns read from the file in
  blocks while the engine runs, amplitudes formed by the feed's thread,
  ``ptyframe.data.feed``); a run that refuses it says so in the table;
* ``PtyLab``: ``benchmarks/peers/run_ptylab.py`` in PtyLab's venv (``--ptylab-python``);
* ``lsqml memory``, ``lsqml stream``: the two ptyframe rows with ``engine=lsqml`` (its
  defaults), on the cases of ``--lsqml-cases`` only;
* ``baseline memory`` (and ``baseline lsqml memory``): with ``--baseline DIR``, the in-memory
  rows run from another checkout of ptyframe (the child's ``PYTHONPATH`` is ``DIR``, the
  same interpreter and packages): a before/after comparison measured interleaved in one
  invocation.

The process gets one torch thread (``threads=1``) and one thread for numba and BLAS; a
streamed run's file-reading and amplitude threads run beside it (the second core, where the
machine has one free).

Measured: seconds per sweep (the median of the sweeps after the first, which carries numba's
compilation in ptyframe; the same rule for PtyLab) and the child's peak resident memory as the
OS counts it (``ru_maxrss`` of ``os.wait4`` on that child: the whole process, imports,
buffers, output writing). The load average is taken before each row. Rows run one after the
other, never two at once (their memory would add up).

    python benchmarks/scale.py [--cases 625 3364 1024x256] [--rows memory stream ptylab ...]
        [--sweeps 3] [--dtype float32] [--ptylab-python .venv-ptylab/bin/python]

The table goes to stdout and ``docs/results/scale.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from _lib.results import Stamp, load_average, markdown_table, tree_commit, write_page
from _lib.runs import ONE_THREAD

HERE = Path(__file__).resolve().parent

#: name -> (positions per side, window px, raster step px) of ``conf/case/scale.yaml``
CASES = {
    "625": (25, 128, 16.0),
    "3364": (58, 128, 16.0),
    "1024x256": (32, 256, 32.0),
    "14641": (121, 128, 16.0),
}
#: A small case to try the script on (not in the default list).
SMOKE = {"100": (10, 128, 16.0), "100x256": (10, 256, 32.0)}
ROWS = ("memory", "stream", "ptylab", "lsqml-memory", "lsqml-stream")


@dataclass
class Row:
    """One measured row."""

    case: str
    row: str
    seconds_per_sweep: float | None
    peak_rss_bytes: int | None
    first_sweep_s: float | None
    data_error: float | None
    load: str
    note: str = ""


def make_case(name: str, folder: Path, dtype: str) -> tuple[Path, dict]:
    """Write case ``name`` into ``folder``; return its path and a description."""
    import ptyframe
    from ptyframe.simulation.large import write_simulation

    side, m, step = {**CASES, **SMOKE}[name]
    sim, phantom, probe, scan = ptyframe.case_components(
        "scale",
        [
            f"scan.n_y={side}",
            f"scan.n_x={side}",
            f"simulation.window_px={m}",
            f"scan.step_px={step}",
        ],
    )
    path = folder / f"scale_{name}.h5"
    t0 = time.perf_counter()
    geom = write_simulation(sim, phantom, probe, scan, path, dtype=dtype)
    n = side * side
    item = np.dtype(dtype).itemsize
    return path, {
        "patterns": n,
        "window": m,
        "object": geom.object_shape,
        "data_bytes": n * m * m * item,
        "float32_bytes": n * m * m * 4,
        "simulate_s": time.perf_counter() - t0,
    }


#: Run argv[1:] and print its exit code and ``ru_maxrss`` (KiB) from ``wait4``. Linux keeps
#: the peak of the memory image a child had before ``exec`` in its ``ru_maxrss``: forked from
#: this script (torch imported) every row would read at least this script's size, so rows are
#: started from this small interpreter instead.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, file=sys.stderr)
"""


def run_child(
    cmd: list[str], cwd: Path, log: Path, pythonpath: str | None = None
) -> tuple[int, int]:
    """Run ``cmd``; return (exit code, peak RSS in bytes of that child, from ``wait4``).

    ``pythonpath``: the child imports ptyframe from there (a baseline checkout).
    """
    env = {**os.environ, **ONE_THREAD, "MPLBACKEND": "Agg"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    with open(log, "w") as out:
        res = subprocess.run(
            [sys.executable, "-S", "-c", LAUNCHER, *cmd],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            check=False,
        )
    *rest, tail = res.stderr.strip().splitlines() or ["-1 0"]
    if rest:
        with open(log, "a") as out:
            out.write("\n".join(rest) + "\n")
    code, kib = (int(v) for v in tail.split())
    return code, kib * 1024  # Linux: kilobytes


def steady(seconds: list[float]) -> tuple[float | None, float | None]:
    """Return (median of the sweeps after the first, the first) in seconds."""
    if not seconds:
        return None, None
    rest = seconds[1:] or seconds
    return float(np.median(rest)), float(seconds[0])


def last_line(log: Path) -> str:
    """Return the last error line of a child's log (what a refusal printed)."""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    errs = [ln for ln in lines if "error" in ln.lower()]
    return (errs or lines or ["(no output)"])[-1][:300]


def run_ptyframe(
    case: str,
    data: Path,
    work: Path,
    sweeps: int,
    stream: bool,
    engine: str = "epie",
    baseline: str | None = None,
) -> Row:
    """Run ``ptyframe reconstruct`` on ``data`` in a child; read its history.

    ``baseline``: a checkout of ptyframe the child imports instead (``--baseline``).
    """
    from ptyframe.io.results import read_result

    tag = ("stream" if stream else "memory") + ("" if engine == "epie" else f"_{engine}")
    tag = f"baseline_{tag}" if baseline else tag
    out = work / f"{case}_{tag}"
    cmd = [
        sys.executable,
        "-m",
        "ptyframe.cli",
        "reconstruct",
        f"data.path={data}",
        f"engine={engine}",
        f"engine.epochs={sweeps}",
        "threads=1",
        "seed=0",
        "progress=false",
        "metrics.names=[]",
        "output.checkpoint_every=0",
        "output.images=false",
        f"output.dir={out}",
    ]
    if stream:
        cmd.append("data.stream=true")
    load = load_average()
    log = work / f"{case}_{tag}.log"
    rc, rss = run_child(cmd, work, log, baseline)
    label = f"ptyframe {tag.replace('_', ' ')}"
    if rc != 0:
        note = f"exit {rc}: " + last_line(log)
        return Row(case, label, None, rss, None, None, load, note)
    res = read_result(out / "recon.h5")
    secs = [float(s) for s in res.history.columns.get("seconds", [])]
    if len(secs) != sweeps:
        raise SystemExit(f"{case} {tag}: {len(secs)} sweeps in the history, expected {sweeps}")
    err = float(res.history.last("data_error"))
    if not np.isfinite(err) or not np.isfinite(res.object).all():
        raise SystemExit(f"{case} {tag}: the run produced a non-finite object or error")
    per, first = steady(secs)
    how = (
        "streamed"
        if res.attrs.get("patterns_streamed")
        else ("counts" if res.attrs.get("patterns_as_counts") else "float amplitudes")
    )
    block = int(res.attrs.get("stream_block_patterns", 0) or 0)
    note = f"{how}" + (f", blocks of {block}" if block else "")
    if baseline:
        note += f"; checkout {tree_commit(baseline)}"
    return Row(case, label, per, rss, first, err, load, note)


def run_ptylab(case: str, data: Path, work: Path, sweeps: int, python: str) -> Row:
    """Run PtyLab's ePIE on ``data`` in its venv; read its per-sweep seconds."""
    out = work / f"{case}_ptylab.npz"
    cmd = [
        python,
        str(HERE / "peers" / "run_ptylab.py"),
        str(data),
        str(out),
        "--engine",
        "ePIE",
        "--sweeps",
        str(sweeps),
        "--threads",
        "1",
    ]
    load = load_average()
    log = work / f"{case}_ptylab.log"
    rc, rss = run_child(cmd, work, log)
    if rc != 0 or not out.exists():
        return Row(case, "PtyLab", None, rss, None, None, load, f"exit {rc}: " + last_line(log))
    with np.load(out) as z:
        secs = [float(s) for s in z["seconds_per_sweep"]]
        obj = z["object"]
        info = json.loads(str(z["info"]))
    if len(secs) != sweeps or not np.isfinite(obj).all() or np.abs(obj - 1).max() == 0:
        raise SystemExit(f"{case} PtyLab: {len(secs)} sweeps or an object that did not move")
    per, first = steady(secs)
    return Row(case, "PtyLab", per, rss, first, None, load, f"PtyLab {info.get('version')}")


def fmt_bytes(b: float | None) -> str:
    return "-" if b is None else (f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB")


def fmt_s(s: float | None) -> str:
    return "-" if s is None else f"{s:.3g}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=[*CASES, *SMOKE])
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--sweeps", type=int, default=3)
    p.add_argument(
        "--lsqml-cases", nargs="*", default=["3364"], help="cases that get the lsqml rows"
    )
    p.add_argument(
        "--baseline",
        default=None,
        help="a checkout of ptyframe whose in-memory rows run first (before/after)",
    )
    p.add_argument("--dtype", default="float32", choices=("float32", "uint16", "uint32"))
    p.add_argument("--ptylab-python", default=str(HERE.parent / ".venv-ptylab/bin/python"))
    p.add_argument(
        "--page", default="scale", help="results page name (docs/results/NAME.md; '': none)"
    )
    args = p.parse_args()
    stamp = Stamp()
    if "ptylab" in args.rows and not Path(args.ptylab_python).exists():
        raise SystemExit(f"{args.ptylab_python} missing: bash benchmarks/peers/install.sh ptylab")
    # the children run in a work folder: a relative interpreter path is made whole here (not
    # resolved: a venv's python is a link whose target would leave the venv)
    args.ptylab_python = str(Path(args.ptylab_python).absolute())
    rows: list[Row] = []
    described: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="ptyframe-scale-") as tmp:
        work = Path(tmp)
        for case in args.cases:
            data, info = make_case(case, work, args.dtype)
            described[case] = info
            print(f"# case {case}: {json.dumps(info)}", flush=True)
            for row in args.rows:
                if row.startswith("lsqml") and case not in args.lsqml_cases:
                    continue
                if row == "ptylab":
                    done = [run_ptylab(case, data, work, args.sweeps, args.ptylab_python)]
                    print(f"  {done[0]}", flush=True)
                else:
                    engine = "lsqml" if row.startswith("lsqml") else "epie"
                    stream = row.endswith("stream")
                    checkouts = [args.baseline] if args.baseline and not stream else []
                    done = []
                    for checkout in [*checkouts, None]:  # the baseline first, then this one
                        r = run_ptyframe(case, data, work, args.sweeps, stream, engine, checkout)
                        print(f"  {r}", flush=True)
                        done.append(r)
                rows.extend(done)
            data.unlink()
    header = [
        "scan",
        "object",
        f"data ({args.dtype})",
        "row",
        "s/sweep",
        "first sweep s",
        "peak RSS",
        "peak / data",
        "data error",
        "load",
        "note",
    ]
    table = []
    for r in rows:
        info = described[r.case]
        m = info["window"]
        ratio = None if r.peak_rss_bytes is None else r.peak_rss_bytes / info["data_bytes"]
        table.append(
            [
                f"{info['patterns']:,} x {m}^2",
                "x".join(str(v) for v in info["object"]),
                fmt_bytes(info["data_bytes"]),
                r.row,
                fmt_s(r.seconds_per_sweep),
                fmt_s(r.first_sweep_s),
                fmt_bytes(r.peak_rss_bytes),
                "-" if ratio is None else f"{ratio:.1f}",
                "-" if r.data_error is None else f"{r.data_error:.4g}",
                r.load,
                r.note.replace("|", "/"),
            ]
        )
    body = markdown_table(header, table)
    print(body)
    about = (
        "ePIE (and LSQML where named), one torch thread, seconds per sweep (median of the "
        "sweeps after the first) and the "
        "peak resident memory of each run's process as the OS counts it (`ru_maxrss`), on "
        "simulated scans (natural phantom, focused probe, 1e6 photons per pattern, Poisson "
        "noise). Rows run one after the other in one invocation; `load` is the 1-minute load "
        "average before each row. See `benchmarks/scale.py`."
    )
    if args.page:  # '': print the table only
        path = write_page(args.page, "Big scans: time and memory", body, stamp, about)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
