"""Write what a run leaves in its directory: ``recon.h5``, ``config.yaml``, CXI and the PNGs.

Written at the end of every run that has a state worth keeping: finished, interrupted (the
last good state, status ``interrupted``) or diverged (the last good state, status
``diverged``); a run that failed on a bug writes nothing. ``recon.h5`` is written atomically.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ptyframe.callbacks.base import Callback, RunContext
from ptyframe.config import OutputConfig
from ptyframe.io.results import RESULT_FILE, package_versions, write_result
from ptyframe.metrics.illumination import illumination_map
from ptyframe.state import ReconstructionState

if TYPE_CHECKING:
    from ptyframe.metrics.frc import FrcResult

#: statuses whose (last good) state is written
WRITTEN = ("finished", "interrupted", "diverged")


class OutputsCallback(Callback):
    """Write the result files at the end of the run (on the root; the gather is collective)."""

    order = 90

    def __init__(self, config: OutputConfig | None = None) -> None:
        self.config = config or OutputConfig()

    def on_run_end(self, run: RunContext, status: str) -> None:
        if status not in WRITTEN or not run.write:
            return
        whole = run.whole()
        if run.writer and whole is not None:
            run.files = self.write(run, whole, status)

    def write(self, run: RunContext, state: ReconstructionState, status: str) -> list[Path]:
        """Write every output of ``state``; return the files."""
        out = run.out_dir
        out.mkdir(parents=True, exist_ok=True)
        result_path = out / RESULT_FILE
        attrs = result_attrs(run, status)
        arrays = state.numpy()
        estimate = run.estimate(state)
        final = run.truth.final_frc(estimate) if run.truth is not None else None
        if final is not None:  # once: recon.h5 and frc.png share it
            arrays["final/frc"] = np.asarray(final.frc)
            arrays["final/freq_per_m"] = np.asarray(final.freq_per_m)
        write_result(result_path, arrays, run.history, attrs, overwrite=True)
        (out / "config.yaml").write_text(run.config_yaml)
        files = [result_path, out / "config.yaml"]
        if self.config.format == "cxi":  # the same result with CXI conventions
            from ptyframe.io.cxi import write_cxi_result

            files.append(
                write_cxi_result(out / "recon.cxi", arrays, run.history, run.dataset, attrs)
            )
        if self.config.images:
            files += images(run, state, estimate, final)
        return files


def source_attrs(run: RunContext) -> dict[str, Any]:
    """Return what every ``recon.h5`` of ``run`` names: config, engine (and how it ran: its
    backend, ``engine_backend``, ``engine_fft``, ...), data file, conventions."""
    ds = run.dataset
    return {
        "config": run.config_yaml,
        "engine": run.engine.name,
        **{f"engine_{k}": v for k, v in run.engine.describe().items()},
        "data_path": str(getattr(ds, "path", "") or "(in memory)"),
        "data_conventions": json.dumps(getattr(ds, "conventions", {}), default=str),
    }


def result_attrs(run: RunContext, status: str) -> dict[str, Any]:
    """Return the attributes of ``recon.h5``: config, versions, status, provenance."""
    ds = run.dataset
    return {
        **source_attrs(run),
        "versions": json.dumps(package_versions()),
        "seed": int(run.cfg.seed),
        "status": status,
        "epochs_done": len(run.history.epochs),
        "pixel_size_m": float(ds.geometry.pixel_size_m),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "still_improving": False,
        "deterministic": bool(run.cfg.deterministic),
        "torch_threads": torch.get_num_threads(),
        **run.attrs,
    }


def optics_start(run: RunContext) -> np.ndarray | None:
    """Return the starting probe ``[K, M, M]`` of ``init.probe=zone_plate|kb``, else None."""
    from ptyframe.initial import OPTICS_PROBES, initial_probe

    init = getattr(run.cfg, "init", None)
    if init is None or init.probe not in OPTICS_PROBES or not run.measurements:
        return None
    return initial_probe(init, run.dataset, run.measurements[0])


def images(
    run: RunContext, state: ReconstructionState, estimate: np.ndarray, final: FrcResult | None
) -> list[Path]:
    """Write the run's PNGs; ``final`` is the last object's FRC against the truth, if any."""
    from ptyframe.io import images as img

    out, truth, ds = run.out_dir, run.truth, run.dataset
    probe = state.probe.detach().cpu().numpy()
    if truth is not None and truth.enabled:
        illum = truth.illumination
    else:
        illum = illumination_map(probe, ds.geometry.positions_px, estimate.shape)
    pixel_m = float(ds.geometry.pixel_size_m)
    files = img.object_images(estimate, out, pixel_m, illum)
    files.append(img.probe_image(probe, out, pixel_m))
    start = optics_start(run)
    if start is not None:  # the beam of the optics the run started from
        files.append(img.probe_image(start, out, pixel_m, "initial_probe.png", "initial probe"))
    if "position_corrections_px" in state.extras:  # the frame's position correction
        from ptyframe.io.correction_images import FILE, position_corrections_image

        refined = state.positions_px.detach().cpu().numpy()
        moves = state.extras["position_corrections_px"].detach().cpu().numpy()
        files.append(position_corrections_image(refined - moves, refined, out / FILE))
    if run.history.epochs:
        files.append(img.convergence_image(run.history, out))
    m = img.metrics_image(run.history, out)
    if m is not None:
        files.append(m)
    if final is not None and truth is not None:
        nyquist = 0.5 / truth.pixel_size_m
        files.append(
            img.frc_image(
                final.freq_per_m,
                final.frc,
                final.half_bit,
                nyquist,
                out,
                resolution_m=final.resolution_m("half_bit"),
            )
        )
    return files
