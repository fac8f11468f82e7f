"""Run ``ptyframe simulate``: build phantom, probe, scan and simulator; write the dataset.

Config (``conf/simulate.yaml`` over ``SimulateRunConfig``)::

    ptyframe simulate out=demo.h5 phantom=siemens_star scan=fermat scan.overlap=0.6 \
        simulation.photons_per_pattern=1e5

Besides the HDF5 file, a preview ``<out>.png`` shows the true amplitude, phase and probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptyframe.errors import ConfigError, OutputExistsError
from ptyframe.registry import BuildContext, Registry
from ptyframe.simulation.simulate import SimulatedData


@dataclass
class SimulateRunConfig:
    """One ``ptyframe simulate`` call."""

    out: str = "???"
    overwrite: bool = False
    preview: bool = True
    simulation: Any = None
    phantom: Any = None
    probe: Any = None
    scan: Any = None


def run_simulate(cfg: Any, registry: Registry) -> Path:
    """Simulate and write the dataset ``cfg.out``; return its path."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        if OmegaConf.is_missing(cfg, "out"):
            raise ConfigError("no output file: give `out=FILE.h5`")
        out, overwrite, preview = str(cfg.out), bool(cfg.overwrite), bool(cfg.preview)
    else:
        out, overwrite, preview = cfg.out, cfg.overwrite, cfg.preview
    if out in ("", "???"):
        raise ConfigError("no output file: give `out=FILE.h5`")
    path = Path(out)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; choose another out= or overwrite=true")
    data = simulate_config(cfg, registry)
    data.write(path, overwrite=overwrite)
    if preview:
        _preview(data, path.with_suffix(".png"))
    return path


def build_components(cfg: Any, registry: Registry, device: str = "cpu") -> tuple[Any, ...]:
    """Return ``(simulator, phantom, probe, scan)`` built from a ``simulate`` config.

    ``cfg`` holds ``simulation``, ``phantom``, ``probe`` and ``scan`` (each a registered name
    or a config mapping; absent: ``ptycho2d``, ``particles``, ``focused``, ``raster``): what
    ``ptyframe simulate`` and ``ptyframe.simulate_case`` compose from ``conf/``. ``device``
    is where the simulator computes (the data it returns are numpy arrays).
    """
    ctx = BuildContext(registry, device)
    phantom = registry.build("phantom", cfg.phantom or "particles", ctx)
    probe = registry.build("probe", cfg.probe or "focused", ctx)
    scan = registry.build("scan", cfg.scan or "raster", ctx)
    simulator = registry.build("simulation", cfg.simulation or "ptycho2d", ctx)
    return simulator, phantom, probe, scan


def simulate_config(cfg: Any, registry: Registry, device: str = "cpu") -> SimulatedData:
    """Simulate the dataset of a ``simulate`` config (``build_components``, then ``run``)."""
    simulator, phantom, probe, scan = build_components(cfg, registry, device)
    data: SimulatedData = simulator.run(phantom, probe, scan)
    return data


def _preview(data: Any, path: Path) -> None:
    from ptyframe.io.images import truth_preview

    truth_preview(
        data.truth.object[0],
        data.truth.probe[0],
        data.geometry.positions_px,
        float(data.geometry.pixel_size_m),
        path,
    )
