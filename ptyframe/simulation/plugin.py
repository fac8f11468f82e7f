"""Register the simulation components: phantoms, probes, scans and the ptycho2d simulator."""

from __future__ import annotations

from ptyframe.hookspecs import hookimpl


@hookimpl
def ptyframe_register(registry) -> None:  # noqa: ANN001
    """Add phantom, probe, scan and simulation components to ``registry``."""
    from ptyframe.simulation import phantoms, probes, scans, simulate

    registry.add_phantom(phantoms.ParticlesConfig, phantoms.ParticlesPhantom)
    registry.add_phantom(phantoms.SiemensStarConfig, phantoms.SiemensStarPhantom)
    registry.add_phantom(phantoms.NaturalConfig, phantoms.NaturalPhantom)
    registry.add_probe(probes.FocusedProbeConfig, probes.FocusedProbe)
    registry.add_probe(probes.GaussianProbeConfig, probes.GaussianProbe)
    registry.add_probe(probes.DiskProbeConfig, probes.DiskProbe)
    registry.add_scan(scans.RasterScanConfig, scans.RasterScan)
    registry.add_scan(scans.FermatScanConfig, scans.FermatScan)
    registry.add_simulation(simulate.SimulationConfig, simulate.build_simulator)
