"""Time LSQML sweeps against ePIE sweeps, interleaved, on the engines-table case.

    python benchmarks/lsqml_sweep.py [--sweeps 8] [--baseline GIT_REV]

Builds ``engines_table.natural_case`` (625 patterns of 128x128, 1e6 photons), warms each
engine up for two sweeps, then runs their sweeps in turn (ePIE, LSQML, and with
``--baseline`` the LSQML of ``ptyframe/engines/{lsqml,minibatch}.py`` at that git revision,
loaded from ``git show`` into a temporary module) so that machine load hits them alike.
Prints each engine's median s/sweep and its ratio to ePIE's. One torch thread.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch

from ptyframe.data.measurements import Measurements
from ptyframe.initial import InitConfig, initial_state
from ptyframe.plugins import default_registry

from _lib.cases import natural_case
from _lib.engines import prepared_engine

ROOT = Path(__file__).resolve().parents[1]


def baseline_lsqml(rev: str, folder: Path) -> ModuleType:
    """Return the ``lsqml`` module of git revision ``rev`` (with its own ``minibatch``)."""
    for name in ("lsqml", "minibatch"):
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:ptyframe/engines/{name}.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        text = text.replace("from ptyframe.engines.minibatch import", "from _base_minibatch import")
        (folder / f"_base_{name}.py").write_text(text)
    sys.path.insert(0, str(folder))
    return importlib.import_module("_base_lsqml")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sweeps", type=int, default=8)
    ap.add_argument("--baseline", default=None, help="git revision of the LSQML to compare")
    args = ap.parse_args()
    torch.set_num_threads(1)
    registry = default_registry()
    data = natural_case(registry)
    engines = {
        label: prepared_engine(registry, label, data, epochs=args.sweeps + 2)[0]
        for label in ("epie", "lsqml")
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            mod = baseline_lsqml(args.baseline, Path(tmp))
            base = mod.LsqmlEngine(mod.LsqmlConfig())
            meas = Measurements.from_dataset(data)
            base.prepare(meas, initial_state(InitConfig(), data, meas), seed=0)
            engines[f"lsqml @ {args.baseline}"] = base
        times: dict[str, list[float]] = {k: [] for k in engines}
        for epoch in range(args.sweeps + 2):
            for label, eng in engines.items():
                t0 = time.perf_counter()
                eng.step(epoch)
                if epoch >= 2:
                    times[label].append(time.perf_counter() - t0)
    ref = statistics.median(times["epie"])
    print(f"{args.sweeps} interleaved sweeps after 2 warm-up sweeps, one torch thread\n")
    print("| engine | s / sweep (median) | / ePIE |")
    print("|---|---|---|")
    for label, ts in times.items():
        med = statistics.median(ts)
        print(f"| {label} | {med:.3f} | {med / ref:.2f} |")


if __name__ == "__main__":
    main()
