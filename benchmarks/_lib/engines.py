"""Build, run and score a registered engine on an in-memory case (the engines table's rows).

``prepared_engine`` builds engine ``name`` from the registry (its defaults, then the given
fields) and prepares it on the default initial state; ``run_engine`` runs it and returns the
median seconds per sweep; ``score`` gives the registered ``nrmse`` and ``frc`` metric
components (``ptyframe.metrics``: windowed deviations, FRC band at 1/2 Nyquist) and
``nrmse_raw``, ``ptyframe.metrics.image.nrmse`` of the aligned, scaled object against the
truth over the lit region (the object itself, not its deviations).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ptyframe.compose import build_engine
from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.measurements import Measurements
from ptyframe.engines.base import Engine
from ptyframe.initial import InitConfig, initial_state
from ptyframe.metrics.illumination import truth_reference
from ptyframe.metrics.image import nrmse
from ptyframe.registry import BuildContext, Registry
from ptyframe.state import ReconstructionState


def prepared_engine(
    registry: Registry,
    name: str,
    data: PtychoDataset,
    meas: Measurements | None = None,
    epochs: int = 10**6,
    **overrides: object,
) -> tuple[Engine, ReconstructionState]:
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


def run_engine(
    registry: Registry, name: str, overrides: dict, data: PtychoDataset, sweeps: int
) -> tuple[float, float, ReconstructionState]:
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


def score(registry: Registry, data: PtychoDataset, state: ReconstructionState) -> dict[str, float]:
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
