"""Score one engine over a small grid of settings on a natural-image case (for tuning defaults).

    python benchmarks/engine_tuning.py mpie --photons 1e5 --seed 1 --sweeps 100 \
        --grid alpha=0.1,0.5,1.0 object_step=0.25,0.5

The case is ``engines_table.natural_case`` (625 patterns of 128x128) at the given dose, seed
(phantom draw, scan jitter and noise), phantom (``--phantom particles``) and raster overlap
(``--overlap``). Tune on one dose/seed and report the chosen defaults on another
(``engines_table.py``, 1e6 photons, seed 0), so the table does not score the tuning data.
Prints a markdown table: each combination's s/sweep, data error, raw NRMSE and the
registered metrics (NRMSE of the deviations, FRC at 1/2 Nyquist).
"""

from __future__ import annotations

import argparse
import itertools

import torch

from ptyframe.plugins import default_registry

from _lib.cases import natural_case
from _lib.engines import run_engine, score, table_row


def parse_value(text: str) -> int | float | str:
    """Return ``text`` as an int or float where it is one (``batching=sparse`` stays text)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def setting(item: tuple[str, int | float | str]) -> str:
    """Return ``key=value`` for a table label (numbers in ``%g``)."""
    key, value = item
    return f"{key}={value:g}" if isinstance(value, (int, float)) else f"{key}={value}"


def parse_grid(items: list[str]) -> dict[str, list[int | float | str]]:
    """Parse ``key=v1,v2`` items into a dict of value lists."""
    grid = {}
    for item in items:
        key, _, values = item.partition("=")
        grid[key] = [parse_value(v) for v in values.split(",")]
    return grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("engine")
    ap.add_argument("--grid", nargs="*", default=[])
    ap.add_argument("--sweeps", type=int, default=100)
    ap.add_argument("--photons", type=float, default=1e5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--phantom", default="natural")
    ap.add_argument("--overlap", type=float, default=0.7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    registry = default_registry()
    data = natural_case(registry, args.photons, args.seed, args.phantom, args.overlap)
    grid = parse_grid(args.grid)
    print(
        f"{args.engine}, {args.phantom}, overlap {args.overlap:g}, {args.photons:g} photons, "
        f"seed {args.seed} (phantom, jitter, noise), "
        f"{args.sweeps} sweeps, one torch thread\n"
    )
    print("| settings | s / sweep | data error | NRMSE raw | NRMSE (deviations) | FRC @ 1/2 Ny |")
    print("|---|---|---|---|---|---|")
    for values in itertools.product(*grid.values()):
        overrides = dict(zip(grid, values, strict=True))
        sec, err, state = run_engine(registry, args.engine, overrides, data, args.sweeps)
        label = ", ".join(map(setting, overrides.items())) or "defaults"
        print(table_row(label, sec, err, score(registry, data, state)), flush=True)


if __name__ == "__main__":
    main()
