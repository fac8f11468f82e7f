"""Register the simulation components: phantoms, probes, scans and the ptycho2d simulator."""

from __future__ import annotations

from ptyframe.hookspecs import hookimpl


@hookimpl
def ptyframe_register(registry) -> None:  # noqa: ANN001
    """Add phantom, probe, scan and simulation components to ``registry``."""
    from ptyframe.simulation import phantoms, probes, scans, simulate

    registry.add("phantom", "particles", phantoms.build_particles, phantoms.ParticlesConfig)
    registry.add("phantom", "siemens_star", phantoms.build_siemens_star, phantoms.SiemensStarConfig)
    registry.add("phantom", "natural", phantoms.build_natural, phantoms.NaturalConfig)
    registry.add("probe", "focused", probes.build_focused, probes.FocusedProbeConfig)
    registry.add("probe", "gaussian", probes.build_gaussian, probes.GaussianProbeConfig)
    registry.add("probe", "disk", probes.build_disk, probes.DiskProbeConfig)
    registry.add("scan", "raster", scans.build_raster, scans.RasterScanConfig)
    registry.add("scan", "fermat", scans.build_fermat, scans.FermatScanConfig)
    registry.add("simulation", "ptycho2d", simulate.build_simulator, simulate.SimulationConfig)
