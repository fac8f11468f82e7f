"""Time every engine on the GPU: seconds per iteration and patterns per second.

Two cases, simulated in memory on the device (natural-image phantom, focused probe,
jittered raster, 1e6 photons per pattern, noiseless: the speed does not depend on the noise,
and drawing 268 million Poisson counts would cost the device session half a minute):

* ``1000x256``: 1,000 patterns of 256 x 256 (a 25 x 40 raster);
* ``16384x128``: 16,384 patterns of 128 x 128 (a 128 x 128 raster).

Each engine runs through ``ptyframe.runner.run`` (``device``, no outputs, metrics only at
the end) for at most ``--max-epochs`` iterations and stops after the iteration that passes
``--budget-s`` seconds (the box is checked between iterations, so one iteration always
runs). ``s / iter`` is the median over the iterations after the first (the first holds
cuFFT planning, numba compilation and cuDNN autotuning; with one iteration it is that one,
marked ``*``); ``setup s`` is loading the patterns and preparing the engine. On CUDA each
iteration ends with ``torch.cuda.synchronize()``. Minibatch engines (``minibatch_pie``,
``lsqml``, ``autodiff``) use ``--batch`` positions per update (default 1024, or all
positions if fewer). ``--patterns-on-host`` adds rows of the minibatch engines with
``patterns_on_host=true`` (the patterns stay in host memory and each minibatch is sent
through page-locked memory). ``peak GiB`` is ``torch.cuda.max_memory_allocated`` of the
run. Rows are printed (and appended to ``--out``) as they finish, so a run stopped by a
time limit keeps what it measured.

The anchors printed beside the table are quoted from the projects' own publications, on
other GPUs; they were not measured here:

* PyNX (its README), one V100, 1000 frames of 256 x 256: 13 ms per alternating-projection
  cycle, 34 ms per maximum-likelihood cycle;
* the PtyRAD paper's repository, 16,384 patterns of 128 x 128 on an A100 slice at batch
  1024: PtyRAD 1.47, PtychoShelves 1.24, py4DSTEM 0.77 s per iteration.

    python benchmarks/gpu_speed.py [--device cuda] [--budget-s 20] [--out table.md]
    python benchmarks/gpu_speed.py --small --device cpu      # a CPU smoke run (seconds)
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from dataclasses import dataclass, field

import torch

#: Batched engines first: a per-position sweep of 16,384 patterns takes the longest.
ENGINES = ["lsqml", "minibatch_pie", "autodiff", "raar", "epie", "rpie", "mpie", "pine"]
BATCHED = {"minibatch_pie": "batch_size", "lsqml": "batch_size", "autodiff": "minibatch"}

#: name -> (window px, raster rows, raster columns)
CASES = {"1000x256": (256, 25, 40), "16384x128": (128, 128, 128)}
SMALL = {"64x32": (32, 8, 8), "144x64": (64, 12, 12)}

ANCHORS = {
    "1000x256": [
        "PyNX, one V100 (its README): 0.013 s per alternating-projection cycle, "
        "0.034 s per ML cycle"
    ],
    "16384x128": [
        "A100 slice at batch 1024 (PtyRAD paper's repository): PtyRAD 1.47, "
        "PtychoShelves 1.24, py4DSTEM 0.77 s per iteration"
    ],
}


@dataclass
class Timing:
    """Iteration end times of one run (seconds since ``on_prepared``)."""

    device: str
    budget_s: float
    start: float = 0.0
    prepared_s: float = 0.0
    ends: list[float] = field(default_factory=list)

    def sync(self) -> float:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter()

    def per_iteration(self) -> tuple[float, bool]:
        """Return (median seconds per iteration after the first, whether only one ran)."""
        steps = [b - a for a, b in zip([0.0, *self.ends], self.ends, strict=False)]
        if len(steps) == 1:
            return steps[0], True
        return statistics.median(steps[1:]), False


def timing_callback(timing: Timing):
    """Return a callback recording ``timing`` and ending the run when the box is spent."""
    from ptyframe.callbacks.base import Callback

    class _Timer(Callback):
        order = 99

        def on_prepared(self, run) -> None:
            t = timing.sync()
            timing.prepared_s = t - timing.start
            timing.start = t

        def on_epoch_end(self, run, report) -> None:
            timing.ends.append(timing.sync() - timing.start)
            if timing.ends[-1] >= timing.budget_s:
                run.end_epoch = run.epoch + 1

    return _Timer()


def make_case(window: int, rows: int, cols: int, device: str, seed: int = 0):
    """Simulate the case on ``device``; return a ``PtychoDataset`` without the truth."""
    from ptyframe.data.dataset import PtychoDataset
    from ptyframe.plugins import default_registry
    from ptyframe.registry import BuildContext

    reg = default_registry()
    ctx = BuildContext(reg, device)
    phantom = reg.build("phantom", "natural", ctx)
    probe = reg.build("probe", "focused", ctx)
    scan = reg.build("scan", {"name": "raster", "n_y": rows, "n_x": cols}, ctx)
    sim = reg.build(
        "simulation",
        {
            "name": "ptycho2d",
            "window_px": window,
            "photons_per_pattern": 1e6,
            "noise": "none",
            "seed": seed,
        },
        ctx,
    )
    data = sim.run(phantom, probe, scan)
    return PtychoDataset(data.geometry, patterns=data.patterns.astype("float32"))


def run_engine(name: str, ds, args, on_host: bool) -> str:
    """Time engine ``name`` on ``ds``; return its table row."""
    import ptyframe.runner

    n = ds.n_tiles
    engine: dict = {"name": name, "epochs": int(args.max_epochs)}
    batch = "-"
    if name in BATCHED:
        batch = str(min(int(args.batch), n))
        engine[BATCHED[name]] = int(batch)
    cfg = {
        "engine": engine,
        "device": args.device,
        "dtype": "complex64",
        "progress": False,
        "patterns_on_host": on_host,
        "metrics": {"every": 0, "names": []},
        "output": {"images": False, "checkpoint_every": 0},
    }
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    timing = Timing(args.device, float(args.budget_s), start=time.perf_counter())
    where = "host" if on_host else "device"
    try:
        ptyframe.runner.run(cfg, dataset=ds, write=False, callbacks=[timing_callback(timing)])
    except Exception as exc:  # one engine's failure (e.g. out of memory) is a row, not the end
        msg = f"{type(exc).__name__}: {exc}".replace("|", "/").splitlines()[0][:90]
        return f"| {name} | {batch} | {where} | - | failed: {msg} | - | - | - |"
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f}" if cuda else "-"
    s_iter, single = timing.per_iteration()
    mark = "*" if single else ""
    return (
        f"| {name} | {batch} | {where} | {len(timing.ends)} | {s_iter:.4f}{mark} | "
        f"{n / s_iter:,.0f} | {timing.prepared_s:.2f} | {peak} |"
    )


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; print and return the markdown tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--small", action="store_true", help="tiny cases (a CPU smoke run)")
    p.add_argument("--cases", nargs="*", default=None, help="case names (default: all)")
    p.add_argument("--engines", nargs="*", default=ENGINES)
    p.add_argument("--budget-s", type=float, default=20.0, help="time box per engine")
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--patterns-on-host", action="store_true")
    p.add_argument("--out", default=None, help="also write the tables to this file")
    args = p.parse_args(argv)
    quiet = logging.getLogger("ptyframe")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # no convergence advice here
    try:
        return _run(args)
    finally:
        quiet.setLevel(level)  # a caller in the same process (a test) keeps its logging


def _run(args: argparse.Namespace) -> str:
    """Run the cases of ``args``; print and return the markdown tables."""
    cases = SMALL if args.small else CASES
    names = args.cases or list(cases)
    lines: list[str] = []
    if args.out:
        open(args.out, "w").close()

    def emit(*rows: str) -> None:
        lines.extend(rows)
        print("\n".join(rows), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write("\n".join(rows) + "\n")

    emit(f"device: {describe(args.device)}; torch {torch.__version__}", "")
    for case in names:
        window, rows, cols = cases[case]
        t0 = time.perf_counter()
        ds = make_case(window, rows, cols, args.device)
        head = [
            f"### {case}: {ds.n_tiles} patterns of {window}x{window}, object "
            f"{ds.geometry.object_shape[0]}x{ds.geometry.object_shape[1]} "
            f"(simulated in {time.perf_counter() - t0:.1f} s)",
            "",
            "| engine | batch | patterns | iterations | s / iter | patterns / s | setup s "
            "| peak GiB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        emit(*head)
        for name in args.engines:
            for on_host in (False, True) if args.patterns_on_host else (False,):
                if not on_host or name in BATCHED:
                    emit(run_engine(name, ds, args, on_host))
        tail = ["", "Anchors (quoted, other hardware, not measured here):"]
        tail += [f"- {a}" for a in ANCHORS.get(case, ["none for this case"])] + [""]
        emit(*tail)
        del ds
    return "\n".join(lines)


def describe(device: str) -> str:
    """Return the device's name (the GPU model on CUDA)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        i = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(i)
        return f"{device} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    return f"{device} ({torch.get_num_threads()} torch threads)"


if __name__ == "__main__":
    main(sys.argv[1:])
