"""Time one ePIE/rPIE sweep on the foundation benchmark case against its FFT floor and PtyLab.

Case: 625 patterns of 128x128 (25x25 raster, step 16 px), 512x512 object (513 with sub-pixel
jitter), focused probe of ~64 px diameter, noiseless. Prints a markdown table.

    python benchmarks/epie_sweep.py [--sweeps 5] [--ptylab-python .venv-ptylab/bin/python]
        [--old-tree CHECKOUT] [--paths fused fused-measure fused-torchfft torch]
        [--rules epie rpie] [--page epie_sweep]

Every row (engines and peers, both cases) is set up first; then each of ``--sweeps`` rounds
runs one sweep of every row in turn, with the FFT floors timed between them, so all ratios
are measured interleaved. Rows: ``fused`` is the default CPU path (numba kernels,
``ptyframe.engines.kernels``, on the planned transforms of ``ptyframe.engines.pie_fft``:
FFTW when pyFFTW is installed, planned by estimate: ``deterministic=true``, the default),
``fused-measure`` the same with timed FFTW plans (``FFTW_MEASURE``: the opt-in
``deterministic=false``), ``fused-torchfft`` the same kernels on ``torch.fft`` transforms,
``torch`` the same maths in torch ops (the path on other devices). The FFT floor of a row is
one forward and one inverse 128x128 transform per position, alone, of the FFT the row calls:
``pie_fft.WindowFFT`` pairs for the fused rows (FFTW with the row's planner, or unscaled
torch.fft with ``out=``), torch.fft ``fft2``/``ifft2`` with ``norm="ortho"`` for the torch
rows (the floor this benchmark gave every row before the FFTW plans). A sub-pixel sweep
makes two such pairs per position (shift the probe, fold the step back).

The table is printed and written as ``docs/results/epie_sweep.md`` (``--page NAME`` for
another name, ``--page ''`` for none) with the stamp of ``benchmarks/_lib/results.py``.

Peers, each a subprocess that sweeps in lockstep with the rows (one sweep per round, waits
outside the timings):

* ``--ptylab-python`` (PtyLab 0.3.7's venv, ``make peers``): PtyLab's ePIE on each case
  written as a data-exchange file (``benchmarks/peers/run_ptylab.py --lockstep``); PtyLab
  rounds sub-pixel positions to whole pixels, so its sub-pixel row runs its integer path;
* ``--old-tree CHECKOUT``: the ePIE sweep of an older ptyframe checkout on the same data
  (``benchmarks/sweep_peer.py`` with ``PYTHONPATH=CHECKOUT``), e.g. the state when the CPU
  speed issue was filed: ``git worktree add --detach /tmp/filed 1115190`` then
  ``--old-tree /tmp/filed``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.exchange import write_dataset
from ptyframe.data.geometry import ScanGeometry
from ptyframe.data.measurements import Measurements
from ptyframe.engines import pie_fft
from ptyframe.engines.backend import fftw_available
from ptyframe.engines.pie import EpieConfig, PieEngine, RpieConfig
from ptyframe.initial import InitConfig, initial_state

from _lib.cases import benchmark_case
from _lib.results import Stamp, markdown_table, write_page

HERE = Path(__file__).resolve().parent


def fft_seconds(n: int, m: int, reps: int = 1) -> float:
    """Return seconds for ``n`` torch ``fft2`` + ``ifft2`` (``norm="ortho"``) of ``m x m``."""
    a = torch.randn(1, m, m, dtype=torch.complex64)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(n):
            b = torch.fft.fft2(a, norm="ortho")
            torch.fft.ifft2(b, norm="ortho")
        best = min(best, time.perf_counter() - t0)
    return best


def floor_seconds(kind: str, n: int, m: int) -> float:
    """Return the FFT floor of ``n`` positions for a row calling ``kind``.

    ``fftw estimate``, ``fftw measure`` and ``torch unscaled``: the fused path's
    ``pie_fft.WindowFFT`` pairs on that backend (FFTW planned by estimate, the deterministic
    default, or timed); ``torch ortho``: ``fft2``/``ifft2`` with ``norm="ortho"`` (the torch
    path).
    """
    if kind in FLOOR_PAIRS:
        backend, planner = FLOOR_PAIRS[kind]
        return pie_fft.pair_seconds((m, m), n, backend, planner)
    return fft_seconds(n, m)


#: The FFT of a fused row -> (``WindowFFT`` kind, FFTW planner flag).
FLOOR_PAIRS = {
    "fftw estimate": ("fftw", "FFTW_ESTIMATE"),
    "fftw measure": ("fftw", "FFTW_MEASURE"),
    "torch unscaled": ("torch", "FFTW_ESTIMATE"),
}


@dataclass
class Row:
    """One timed line of the table: ``sweep()`` runs one sweep and returns its seconds."""

    engine: str
    positions: str
    path: str
    fft: str  # the FFT it calls: fftw, torch or "-" (a peer)
    sweep: Callable[[], float]
    seconds: list[float] = field(default_factory=list)
    floors: list[float] = field(default_factory=list)
    close: Callable[[], None] = lambda: None


def engine_row(ds: PtychoDataset, meas: Measurements, rule: str, path: str, kind: str) -> Row:
    """Return the row of ptyframe's ``rule`` on ``path`` (fused, fused-measure,
    fused-torchfft, torch)."""
    fftw = path in ("fused", "fused-measure") and fftw_available()
    backend = {"backend": "torch" if path == "torch" else "numba"}
    backend["fft"] = "fftw" if fftw else "auto" if path == "torch" else "torch"
    cls = EpieConfig if rule == "epie" else RpieConfig
    cfg = cls(epochs=10**6, **backend)
    state = initial_state(InitConfig(), ds, meas)
    eng = PieEngine(cfg)
    eng.deterministic = path != "fused-measure"
    epoch = [0]

    def sweep() -> float:
        report = eng.step(epoch[0])
        epoch[0] += 1
        return report.seconds

    eng.prepare(meas, state, seed=0)
    sweep()  # warm-up (numba compile / cache load, FFT plans)
    plans = "estimate" if eng.deterministic else "measure"
    fft = f"fftw {plans}" if fftw else ("torch unscaled" if eng.backend.fused else "torch ortho")
    return Row(rule, kind, path, fft, sweep)


class Peer:
    """A subprocess that runs one sweep per line it reads and prints ``sweep SECONDS``."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.lines: list[str] = []

    def sweep(self) -> float:
        """Let the peer run one sweep; return its seconds."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"peer {self.proc.args[:3]} ended: {self.lines[-5:]}")
            found = re.search(r"sweep (\S+)\s*$", line)  # PtyLab's tqdm shares the line
            if found:
                return float(found.group(1))
            self.lines.append(line.rstrip())

    def close(self) -> None:
        """Let the peer finish (one more line) and wait for it."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("go\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=120)


def ptylab_row(python: str, ds: PtychoDataset, kind: str, sweeps: int, tmp: Path) -> Row:
    """Return the row of PtyLab's ePIE on ``ds`` rounded (one thread, its own venv)."""
    path, out = tmp / f"case_{len(os.listdir(tmp))}.h5", tmp / f"out_{len(os.listdir(tmp))}"
    write_dataset(path, ds.intensities()[None], ds.geometry)
    cmd = [python, str(HERE / "peers" / "run_ptylab.py"), str(path), str(out)]
    cmd += ["--engine", "ePIE", "--sweeps", str(sweeps + 1), "--threads", "1", "--lockstep"]
    peer = Peer(cmd, {**os.environ, "OMP_NUM_THREADS": "1"})
    peer.sweep()  # warm-up
    return Row("PtyLab 0.3.7 ePIE", f"{kind} (rounded)", "-", "-", peer.sweep, close=peer.close)


def old_row(tree: str, ds: PtychoDataset, kind: str, sweeps: int, tmp: Path) -> Row:
    """Return the row of the ePIE sweep of the checkout ``tree`` on ``ds``."""
    path = tmp / f"case_{len(os.listdir(tmp))}.npz"
    g = ds.geometry
    np.savez(
        path,
        positions_px=g.positions_px,
        object_shape=np.asarray(g.object_shape),
        patterns=ds.intensities()[None],
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(tree).resolve())}
    cmd = [sys.executable, str(HERE / "sweep_peer.py"), str(path), "--sweeps", str(sweeps)]
    peer = Peer(cmd, env)
    peer.sweep()  # warm-up
    where = peer.lines[0] if peer.lines else "?"
    if str(Path(tree).resolve()) not in where:
        raise SystemExit(f"--old-tree {tree}: the peer imported {where}")
    rev = subprocess.run(
        ["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return Row(f"epie @ {rev or tree}", kind, "as then", "-", peer.sweep, close=peer.close)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sweeps", type=int, default=5)
    ap.add_argument(
        "--jitter",
        type=float,
        nargs="+",
        default=[0.0, 0.5],
        help="uniform position jitter in px (0: integer positions)",
    )
    ap.add_argument("--rules", nargs="+", default=["epie", "rpie"])
    ap.add_argument(
        "--paths",
        nargs="+",
        default=["fused", "fused-measure", "fused-torchfft", "torch"],
        help="ptyframe paths",
    )
    ap.add_argument("--page", default="epie_sweep", help="results page name ('': none)")
    ap.add_argument("--ptylab-python", default=None, help="PtyLab's python: time its ePIE too")
    ap.add_argument("--old-tree", default=None, help="an older checkout: time its ePIE too")
    args = ap.parse_args()
    stamp = Stamp()
    torch.set_num_threads(1)
    print(
        f"fastest of {args.sweeps} interleaved rounds per row (after one warm-up sweep each); "
        f"one torch thread; FFT backend of the fused path: "
        f"{'fftw' if fftw_available() else 'torch'}; "
        f"load average at start {os.getloadavg()[0]:.2f}\n",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rows: list[Row] = []
        for jitter in args.jitter:
            ds = benchmark_case(jitter_px=jitter)
            meas = Measurements.from_dataset(ds)
            kind = f"{meas.n} integer" if jitter == 0 else f"{meas.n} sub-pixel ({jitter:g} px)"
            for rule in args.rules:
                rows += [engine_row(ds, meas, rule, path, kind) for path in args.paths]
            if args.ptylab_python:
                rows.append(ptylab_row(args.ptylab_python, _rounded(ds), kind, args.sweeps, tmp))
            if args.old_tree:
                rows.append(old_row(args.old_tree, ds, kind, args.sweeps, tmp))
        n, m = meas.n, meas.window[0]
        try:
            for _ in range(args.sweeps):
                for row in rows:
                    if row.fft != "-":
                        row.floors.append(floor_seconds(row.fft, n, m))
                    row.seconds.append(row.sweep())
        finally:
            for row in rows:
                row.close()
    text = table_text(rows, os.getloadavg()[0])
    print(text)
    if args.page:
        about = (
            "Seconds per ePIE/rPIE sweep (fastest of the interleaved rounds, one thread) on "
            "625 noiseless 128x128 patterns, against the FFT floor of each row (the row's "
            "transforms alone) and PtyLab 0.3.7's ePIE on the same data (positions rounded, "
            "as PtyLab does). `fused` plans FFTW by estimate (`deterministic=true`, the "
            "default: the same bits in every process); `fused-measure` plans by timing "
            "(`deterministic=false`). See benchmarks/epie_sweep.py."
        )
        title = "ePIE sweep time: deterministic and timed FFT plans, FFT floor, PtyLab"
        path = write_page(args.page, title, text, stamp, about)
        print(f"wrote {path}")


def table_text(rows: list[Row], load: float) -> str:
    """Return the table (Markdown): each ptyframe row's ratios to its FFT floor and to
    PtyLab's sweep, the comparison with an older tree, and the load average."""
    lab = {
        r.positions.replace(" (rounded)", ""): min(r.seconds) for r in rows if "PtyLab" in r.engine
    }
    header = ["engine", "positions", "path", "FFT", "s / sweep", "FFT floor s"]
    header += ["ratio to floor", "/ PtyLab"]
    table = []
    for r in rows:
        best = min(r.seconds)
        floor = [f"{min(r.floors):.3f}", f"{best / min(r.floors):.2f}"] if r.floors else ["-"] * 2
        ref = lab.get(r.positions)
        vs = f"{best / ref:.2f}" if ref and "PtyLab" not in r.engine else "-"
        table.append([r.engine, r.positions, r.path, r.fft, f"{best:.3f}", *floor, vs])
    parts = [markdown_table(header, table)]
    olds = [r for r in rows if r.engine.startswith("epie @")]
    news = [r for r in rows if r.engine == "epie" and r.path.startswith("fused")]
    if olds:
        lines = [f"ePIE now against {olds[0].engine} (s / sweep ratios, same data, same run):"]
        for new in news:
            for o in olds:
                if o.positions == new.positions:
                    ratio = min(new.seconds) / min(o.seconds)
                    lines.append(f"- {new.path}, {new.positions}: now / then {ratio:.2f}")
        parts.append("\n".join(lines) + "\n")
    parts.append(
        f"load average at the end {load:.2f} (2-core machine: above ~1 the rows share a core)\n"
    )
    return "\n".join(parts)


def _rounded(ds: PtychoDataset) -> PtychoDataset:
    """``ds`` with its positions rounded to whole pixels (what PtyLab does)."""
    g = ds.geometry
    geom = ScanGeometry(
        np.round(g.positions_px), g.window, g.object_shape, g.energy_ev, g.pixel_size_m
    )
    return PtychoDataset(geom, patterns=ds.intensities()[None])


if __name__ == "__main__":
    main()
