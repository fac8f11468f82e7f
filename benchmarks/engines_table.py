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
from types import SimpleNamespace

import numpy as np
import torch

from ptyframe.compose import build_engine
from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.measurements import Measurements
from ptyframe.initial import InitConfig, initial_state
from ptyframe.metrics.illumination import truth_reference
from ptyframe.metrics.image import nrmse
from ptyframe.plugins import default_registry
from ptyframe.registry import BuildContext

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


def natural_case(  # noqa: ANN201
    registry,  # noqa: ANN001
    photons: float = 1e6,
    seed: int = 0,
    phantom: str = "natural",
    overlap: float = 0.7,
):
    """Return the in-memory dataset (see the module docstring).

    ``seed`` draws the phantom, the scan jitter and the noise; ``phantom`` is any registered
    phantom (``natural``, ``particles``, ...) and ``overlap`` the raster's linear overlap.
    """
    ctx = BuildContext(registry)
    phantom_c = registry.build("phantom", phantom, ctx)
    probe = registry.build("probe", "focused", ctx)
    scan = registry.build("scan", {"name": "raster", "n_y": 25, "n_x": 25, "overlap": overlap}, ctx)
    sim = registry.build(
        "simulation",
        {"name": "ptycho2d", "photons_per_pattern": photons, "object_margin_px": 3, "seed": seed},
        ctx,
    )
    sim_data = sim.run(phantom_c, probe, scan)
    return PtychoDataset(sim_data.geometry, patterns=sim_data.patterns, truth=sim_data.truth)


def prepared_engine(  # noqa: ANN201
    registry,  # noqa: ANN001
    name: str,
    data: PtychoDataset,
    meas: Measurements | None = None,
    epochs: int = 10**6,
    **overrides: object,
):
    """Return (engine, state): registered engine ``name`` prepared on ``data`` from the start.

    The engine gets ``epochs`` and ``overrides`` on top of its defaults; the state is the
    default initial state (``InitConfig()``) on ``meas`` (made from ``data`` if not given).
    """
    run_cfg = SimpleNamespace(engine={"name": name, "epochs": epochs, **overrides})
    engine = build_engine(run_cfg, registry, BuildContext(registry))
    meas = Measurements.from_dataset(data) if meas is None else meas
    state = initial_state(InitConfig(), data, meas)
    engine.prepare(meas, state, seed=0)
    return engine, state


def run_engine(registry, name: str, overrides: dict, data, sweeps: int):  # noqa: ANN001, ANN201
    """Reconstruct ``data`` with engine ``name``; return (s/sweep, data error, state)."""
    engine, state = prepared_engine(registry, name, data, epochs=sweeps, **overrides)
    seconds, err = [], float("nan")
    for report in engine.iterate():
        seconds.append(report.seconds)
        err = report.data_error
    return float(np.median(seconds)), err, state


def table_row(label: str, sec: float, err: float, m: dict[str, float]) -> str:
    """Return one row of the engines table (seconds, data error, NRMSEs, FRC)."""
    return (
        f"| {label} | {sec:.3f} | {err:.4f} | {m['nrmse_raw']:.4f} | {m['nrmse']:.4f} | "
        f"{m['frc_half_nyquist']:.3f} |"
    )


def score(registry, data, state) -> dict[str, float]:  # noqa: ANN001
    """Return the metric values of ``state``'s object against ``data``'s truth."""
    truth, illum = truth_reference(data)
    ctx = BuildContext(registry)
    est = state.object[0].detach().cpu().numpy()
    nr = registry.build("metric", "nrmse", ctx)
    fr = registry.build("metric", "frc", ctx)
    pair = nr.prepare(est, truth, illum)
    out = {**nr(est, truth, illum, data.geometry.pixel_size_m, prepared=pair)}
    out.update(fr(est, truth, illum, data.geometry.pixel_size_m, prepared=pair))
    out["nrmse_raw"] = nrmse(pair.aligned, truth, pair.mask)
    return out


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
