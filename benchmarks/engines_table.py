"""Time each engine and score it against the truth on the natural-image case.

Case: ``phantom=natural`` (seeded, procedural), 25 x 25 jittered raster of 128 x 128
patterns, 512 x 512 object, 1e6 photons per pattern (Poisson), disk initial probe, vacuum
initial object; one torch thread per engine unless ``--threads``. Prints a markdown table:
seconds per sweep (median), the final data error, NRMSE and FRC against the truth.

    python benchmarks/engines_table.py [--sweeps 100] [--engines epie rpie mpie lsqml]

Metrics: ``nrmse`` and ``frc_half_nyquist`` are the registered metric components
(``ptyframe.metrics``: windowed deviations, FRC band at 1/2 Nyquist); ``nrmse raw`` is
``ptyframe.metrics.image.nrmse`` of the aligned, scaled object against the truth over the
lit region (the object itself, not its deviations).
"""

from __future__ import annotations

import argparse

import torch

from ptyframe.plugins import default_registry

from _lib.cases import natural_case
from _lib.engines import run_engine, score, table_row

#: Rows of the table: label -> (registered engine, overrides of its defaults).
ENGINES: dict[str, tuple[str, dict]] = {
    "epie": ("epie", {}),
    "rpie": ("rpie", {}),
    "mpie": ("mpie", {}),
    "minibatch_pie": ("minibatch_pie", {}),
    "minibatch_pie-compact": ("minibatch_pie", {"batching": "compact"}),
    "lsqml": ("lsqml", {}),
    "lsqml-sparse": ("lsqml", {"batching": "sparse"}),
    "lsqml-random": ("lsqml", {"batching": "random"}),
    "lsqml-compact": ("lsqml", {"batching": "compact"}),
    "lsqml-poisson": ("lsqml", {"likelihood": "poisson"}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sweeps", type=int, default=100)
    ap.add_argument(
        "--engines", nargs="+", default=["epie", "rpie", "mpie", "minibatch_pie", "lsqml"]
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--photons", type=float, default=1e6)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    registry = default_registry()
    data = natural_case(registry, args.photons)
    print(
        f"natural image, {data.geometry.positions_px.shape[0]} patterns of 128x128, object "
        f"{tuple(data.geometry.object_shape)}, {args.photons:g} photons/pattern, "
        f"{args.sweeps} sweeps, {args.threads} torch thread(s)\n"
    )
    print(
        "| engine | s / sweep | data error | NRMSE raw | NRMSE (deviations) | FRC @ 1/2 Nyquist |"
    )
    print("|---|---|---|---|---|---|")
    for label in args.engines:
        name, overrides = ENGINES.get(label, (label, {}))
        sec, err, state = run_engine(registry, name, overrides, data, args.sweeps)
        print(table_row(label, sec, err, score(registry, data, state)), flush=True)


if __name__ == "__main__":
    main()
