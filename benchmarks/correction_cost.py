"""What the corrections of the engine frame cost per sweep, engine by engine, interleaved.

    PTYFRAME_BENCH_LOCK=/path/to/lock .venv/bin/python benchmarks/correction_cost.py \
        [--rounds 7] [--engines epie mpie lsqml] [--quick]

The scan is the held-out natural-image case of ``benchmarks/real_experiments.py`` (625
patterns of 128 x 128, 1e6 photons, 2 px RMS position errors; ``--quick``: 7 x 7 of 64 x 64).
For each engine (its defaults, ``backend=auto``, one torch thread) two or more copies are
prepared on their own states: without corrections, and with each correction the engine
declares (``positions``: ``engine.refine.positions=true`` with ``start=0``, so every sweep
takes the sums and moves the positions; ``scan map``: the same with ``scan_map`` and the coarse
map step of ``corrections.coarse`` in every sweep, the cost of one of its first sweeps;
``opr3``: ``probe_variation.modes=3`` from sweep 0;
``flux``: ``flux.refine`` from sweep 0; and, where OPR or flux is declared, the uncorrected
engine on the torch backend, which those two run on). After two warm-up sweeps each,
``--rounds`` rounds time one sweep (``step``) of every copy in turn, so that the machine's
load falls on all of them alike; the table gives the median seconds per sweep and the ratio
of each corrected median to the uncorrected one of the same engine, with the backend each
copy ran on (OPR and flux run the torch sweep: their ratio is against the engine's default
backend, the cost a user pays). The whole measurement holds the lock file
``PTYFRAME_BENCH_LOCK`` (``flock``) when it is set. The load average is in the stamp.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _lib.results import Stamp, markdown_table, write_page  # noqa: E402

#: the options of each correction (``ptyframe.engines.corrections``), from sweep 0
OPTIONS = {
    "none": {},
    "none, torch": {"backend": "torch"},
    "positions": {"refine": {"positions": True}, "positions": {"start": 0}},
    "scan map": {
        "refine": {"positions": True},
        "positions": {"start": 0, "scan_map": True, "coarse_start": 0, "coarse_until": 10**6},
    },
    "opr3": {"probe_variation": {"modes": 3, "start": 0}},
    "flux": {"flux": {"refine": True, "start": 0}},
}


@contextmanager
def bench_lock():
    """Hold ``PTYFRAME_BENCH_LOCK`` (``flock``) if it is set."""
    path = os.environ.get("PTYFRAME_BENCH_LOCK")
    if not path:
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def dataset(quick: bool):
    """Return the held-out scan with 2 px RMS position errors as a ``PtychoDataset``."""
    from ptyframe.data.dataset import PtychoDataset
    from ptyframe.simulation.simulate import simulate_dataset

    window, n, step, jitter = (64, 7, 8, 1.0) if quick else (128, 25, 16, 2.0)
    sim = simulate_dataset(
        phantom={"name": "natural"},
        probe={"name": "focused"},
        scan={"name": "step_raster", "n": n, "step_px": step, "jitter_px": jitter},
        window_px=window,
        noise="poisson",
        photons_per_pattern=1e6,
        seed=0,
        nuisances={"position_error_px": 2.0},
    )
    return PtychoDataset(sim.geometry, patterns=sim.patterns, truth=sim.truth)


def prepared(name: str, label: str, ds, meas):
    """Return engine ``name`` with the correction ``label``, prepared on its own state."""
    from ptyframe.compose import build_engine
    from ptyframe.initial import InitConfig, initial_state
    from ptyframe.plugins import default_registry
    from ptyframe.registry import BuildContext

    reg = default_registry()
    fields = {"name": name, "epochs": 1000, **OPTIONS[label]}
    eng = build_engine(SimpleNamespace(engine=fields), reg, BuildContext(reg))
    eng.prepare(meas, initial_state(InitConfig(), ds, meas), seed=0)
    return eng


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--engines", nargs="+", default=["epie", "mpie", "lsqml"])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-page", action="store_true")
    args = p.parse_args(argv)
    stamp = Stamp()
    torch.set_num_threads(1)
    from ptyframe.data.measurements import Measurements
    from ptyframe.plugins import default_registry

    reg = default_registry()
    ds = dataset(args.quick)
    meas = Measurements.from_dataset(ds)
    header = ["engine", "correction", "backend", "s/sweep (median)", "ratio to none"]
    rows: list[list[object]] = []
    print(" | ".join(header), flush=True)
    for name in args.engines:
        caps = reg.get("engine", name).factory.capabilities
        declared = {
            "positions": caps.positions,
            "scan map": caps.positions,
            "opr3": caps.probe_variation,
            "flux": caps.flux,
        }
        labels = ["none"] + [lab for lab, on in declared.items() if on]
        if caps.probe_variation or caps.flux:  # they run the torch sweep: its own cost too
            labels.insert(1, "none, torch")
        engines = {lab: prepared(name, lab, ds, meas) for lab in labels}
        times: dict[str, list[float]] = {lab: [] for lab in labels}
        with bench_lock():
            for epoch in range(2 + args.rounds):
                for lab, eng in engines.items():
                    t0 = time.perf_counter()
                    eng.step(epoch)
                    if epoch >= 2:
                        times[lab].append(time.perf_counter() - t0)
        base = statistics.median(times["none"])
        for lab in labels:
            med = statistics.median(times[lab])
            row = [name, lab, engines[lab].backend.kind, f"{med:.3f}", f"{med / base:.2f}"]
            rows.append(row)
            print(" | ".join(str(c) for c in row), flush=True)
    if args.no_page:
        return
    about = (
        "Seconds per sweep of each fast engine without and with each correction it declares, "
        "interleaved sweep by sweep on the same scan (module docstring of "
        "`benchmarks/correction_cost.py`); ratio: corrected median over uncorrected median."
    )
    name = "correction_cost_quick" if args.quick else "correction_cost"
    body = markdown_table(header, rows)
    write_page(name, "The corrections' cost per sweep", body, stamp, about)


if __name__ == "__main__":
    main()
