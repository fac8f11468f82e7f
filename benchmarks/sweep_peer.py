"""Run ePIE sweeps of another ptyframe checkout in lockstep, for interleaved timings.

    PYTHONPATH=CHECKOUT python benchmarks/sweep_peer.py CASE.npz --sweeps 5

``benchmarks/epie_sweep.py --old-tree CHECKOUT`` starts this with ``PYTHONPATH`` set to an
older checkout, so ``import ptyframe`` loads that checkout's code (checked: the first line
printed names the package file). ``CASE.npz`` holds the benchmark case (``positions_px``,
``object_shape``, ``patterns``). Protocol: wait for a line on stdin, run one sweep (the first
is the warm-up), print ``sweep SECONDS``, repeat ``sweeps + 1`` times. Only APIs that every
checkout since the foundation has (``PtychoDataset``, ``ScanGeometry``, ``Measurements``,
``initial_state``, ``PieEngine.prepare/step``) are used; the engine is built as
``PieEngine(config)`` or, in checkouts from before the rule moved into the config,
``PieEngine(config, "epie")``.
"""

from __future__ import annotations

import argparse
import inspect
import sys

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case")
    ap.add_argument("--sweeps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import ptyframe
    from ptyframe.data.dataset import PtychoDataset
    from ptyframe.data.geometry import ScanGeometry
    from ptyframe.data.measurements import Measurements
    from ptyframe.engines.pie import EpieConfig, PieEngine
    from ptyframe.initial import InitConfig, initial_state

    print(f"ptyframe {ptyframe.__file__}", flush=True)
    f = np.load(args.case)
    m = int(f["patterns"].shape[-1])
    geom = ScanGeometry(
        f["positions_px"], (m, m), tuple(int(v) for v in f["object_shape"]), 8000.0, 20e-9
    )
    ds = PtychoDataset(geom, patterns=f["patterns"])
    meas = Measurements.from_dataset(ds)
    state = initial_state(InitConfig(), ds, meas)
    cfg = EpieConfig(epochs=args.sweeps + 1, alpha=0.25, beta=0.25)
    takes_rule = "rule" in inspect.signature(PieEngine.__init__).parameters
    eng = PieEngine(cfg, "epie") if takes_rule else PieEngine(cfg)
    eng.prepare(meas, state, seed=0)
    for epoch in range(args.sweeps + 1):
        sys.stdin.readline()
        print(f"sweep {eng.step(epoch).seconds!r}", flush=True)


if __name__ == "__main__":
    main()
