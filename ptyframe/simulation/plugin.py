"""Register the simulation components: phantoms, probes, scans, the ptycho2d simulator and
the ``data=simulated`` dataset source."""

from __future__ import annotations

from ptyframe.hookspecs import hookimpl


@hookimpl
def ptyframe_register(registry) -> None:  # noqa: ANN001
    """Add phantom, probe, scan, simulation and the simulated dataset to ``registry``."""
    from ptyframe.simulation import phantoms, probes, scans, simulate, source

    registry.add("phantom", "particles", phantoms.build_particles, phantoms.ParticlesConfig)
    registry.add("phantom", "siemens_star", phantoms.build_siemens_star, phantoms.SiemensStarConfig)
    registry.add("phantom", "natural", phantoms.build_natural, phantoms.NaturalConfig)
    registry.add("probe", "focused", probes.build_focused, probes.FocusedProbeConfig)
    registry.add("probe", "gaussian", probes.build_gaussian, probes.GaussianProbeConfig)
    registry.add("probe", "disk", probes.build_disk, probes.DiskProbeConfig)
    registry.add("scan", "raster", scans.build_raster, scans.RasterScanConfig)
    registry.add("scan", "fermat", scans.build_fermat, scans.FermatScanConfig)
    registry.add("simulation", "ptycho2d", simulate.build_simulator, simulate.SimulationConfig)
    registry.add("dataset", "simulated", source.build_simulated_dataset, source.SimulatedDataConfig)
