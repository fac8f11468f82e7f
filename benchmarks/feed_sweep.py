"""Time a sweep for each way a run holds its patterns, interleaved round by round.

Case: one of ``benchmarks/scale.py``'s simulated scans (``--case``, default ``3364``: 58 x 58
positions of 128 x 128, stored as ``--dtype``), written to a temporary folder and removed.

Rows, for each engine of ``--engines`` (default ``epie lsqml``; the default backend, one torch
thread), all visiting the patterns in blocks of ``--block`` so that every row computes the
same bits (checked after the rounds: a row that differs stops the script):

* ``floats``: float32 amplitudes in memory (``Measurements``), read as views;
* ``counts``: the stored values in memory (``MemorySource``), amplitudes formed a chunk ahead
  by the feed's background thread (``ptyframe.data.feed``; minibatch engines: formed per
  batch by ``batch``);
* ``counts inline``: the same, formed in the sweep's own thread (``AmplitudeFeed(ahead=
  False)``; sequential engines only): what the background thread saves;
* ``stream``: read from the file in blocks (``StreamedSource``), formed by the feed's thread;
* ``stream inline``: the same, formed in the sweep's thread (sequential engines only);
* ``stream one thread``: the feed's thread reads the blocks too (``AmplitudeFeed(reads=
  True)``: one background thread instead of two; sequential engines only).

Each row gets its own engine and copy of the starting state; one warm-up sweep each, then
``--rounds`` rounds run one sweep (``engine.step``) of every row in turn, so the ratios are
measured interleaved under the same load. Prints the table (median seconds per sweep, ratio to
``floats``) and writes ``docs/results/feed_sweep.md``.

    python benchmarks/feed_sweep.py [--case 3364] [--dtype float32] [--rounds 5]
        [--block 1024] [--engines epie lsqml]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _lib.results import Stamp, load_average, markdown_table, write_page  # noqa: E402


@dataclass
class Row:
    """One engine on one way of holding the patterns."""

    engine: str
    holder: str
    data: Any
    run: Any = None
    state: Any = None
    seconds: list[float] = field(default_factory=list)


def holders(ds: Any, block: int, sequential: bool) -> dict[str, Any]:
    """Return the ways of holding ``ds``'s patterns, in blocks of ``block``."""
    from ptyframe.data.feed import AmplitudeFeed
    from ptyframe.data.measurements import Measurements
    from ptyframe.data.patterns import MemorySource
    from ptyframe.data.stream import open_source

    out: dict[str, Any] = {
        "floats": Measurements.from_dataset(ds, block_patterns=block),
        "counts": MemorySource.load(ds, block_patterns=block),
    }
    if sequential:
        inline = MemorySource.load(ds, block_patterns=block)
        inline._feed = AmplitudeFeed(inline, ahead=False)
        out["counts inline"] = inline
    out["stream"] = open_source(ds, stream=True, block_patterns=block)
    if sequential:
        inline = open_source(ds, stream=True, block_patterns=block)
        inline._feed = AmplitudeFeed(inline, ahead=False)
        out["stream inline"] = inline
        one = open_source(ds, stream=True, block_patterns=block)
        one._feed = AmplitudeFeed(one, reads=True)
        out["stream one thread"] = one
    return out


def main() -> None:
    from scale import make_case

    from ptyframe.compose import build_engine
    from ptyframe.data.reader import read_scan
    from ptyframe.data.scanfile import DetectorOptions, build_dataset
    from ptyframe.initial import InitConfig, initial_state
    from ptyframe.plugins import default_registry
    from ptyframe.registry import BuildContext

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", default="3364")
    p.add_argument("--dtype", default="float32", choices=("float32", "uint16"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--block", type=int, default=1024)
    p.add_argument("--engines", nargs="+", default=["epie", "lsqml"])
    p.add_argument("--page", default="feed_sweep")
    args = p.parse_args()
    stamp = Stamp()
    torch.set_num_threads(1)
    reg = default_registry()
    with tempfile.TemporaryDirectory(prefix="ptyframe-feed-") as tmp:
        path, info = make_case(args.case, Path(tmp), args.dtype)
        print(f"# case {args.case}: {info}", flush=True)
        ds = build_dataset(read_scan(str(path), reg), DetectorOptions())
        rows: list[Row] = []
        for name in args.engines:
            cfg = SimpleNamespace(engine={"name": name, "epochs": args.rounds + 1})
            sequential = name in ("epie", "rpie", "mpie", "pine")
            held = holders(ds, args.block, sequential)
            start = initial_state(InitConfig(), ds, held["floats"])
            for holder, data in held.items():
                row = Row(name, holder, data, build_engine(cfg, reg, BuildContext(reg)))
                row.state = start.clone()
                row.run.prepare(data, row.state, seed=0)
                rows.append(row)
        for epoch in range(args.rounds + 1):  # the first round warms up (compilation)
            for row in rows:
                t0 = time.perf_counter()
                row.run.step(epoch)
                if epoch:
                    row.seconds.append(time.perf_counter() - t0)
            print(f"round {epoch}: load {load_average()}", flush=True)
        body = table(rows)
    for row in rows:  # the same bits whichever way the patterns were held
        ref = next(r for r in rows if r.engine == row.engine and r.holder == "floats")
        if not torch.equal(row.state.object, ref.state.object):
            raise SystemExit(f"{row.engine} {row.holder}: not the bits of the floats row")
    print(body)
    about = (
        "Seconds per sweep (median over the rounds) of one engine on the patterns held each "
        "way, rows interleaved round by round in one process (one torch thread; the feed's "
        "and the stream's threads beside it); every row ends with the same object bits. "
        f"Case {args.case} of `benchmarks/scale.py` stored as {args.dtype}, blocks of "
        f"{args.block}. See `benchmarks/feed_sweep.py`."
    )
    title = "Sweep time by way of holding the patterns"
    print(f"wrote {write_page(args.page, title, body, stamp, about)}")


def table(rows: list[Row]) -> str:
    """Return the markdown table of ``rows``."""
    out = []
    for row in rows:
        ref = next(r for r in rows if r.engine == row.engine and r.holder == "floats")
        med, base = float(np.median(row.seconds)), float(np.median(ref.seconds))
        spread = f"{min(row.seconds):.3g}-{max(row.seconds):.3g}"
        out.append([row.engine, row.holder, f"{med:.3g}", spread, f"{med / base:.3f}"])
    return markdown_table(["engine", "patterns", "s/sweep", "range", "vs floats"], out)


if __name__ == "__main__":
    main()
