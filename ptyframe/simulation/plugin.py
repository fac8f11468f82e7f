"""Register the simulation components: phantoms, probes, scans, the ptycho2d simulator and
the ``data=simulated`` dataset source."""

from __future__ import annotations

from ptyframe.hookspecs import hookimpl


@hookimpl
def ptyframe_register(registry) -> None:
    """Add phantom, probe, scan, simulation and the simulated dataset to ``registry``."""
    from ptyframe.simulation import (
        multislice,
        nearfield,
        optics,
        phantoms,
        probes,
        scans,
        simulate,
        source,
    )

    registry.add_phantom(phantoms.ParticlesConfig, phantoms.ParticlesPhantom)
    registry.add_phantom(phantoms.SiemensStarConfig, phantoms.SiemensStarPhantom)
    registry.add_phantom(phantoms.NaturalConfig, phantoms.NaturalPhantom)
    registry.add_probe(probes.FocusedProbeConfig, probes.FocusedProbe)
    registry.add_probe(probes.GaussianProbeConfig, probes.GaussianProbe)
    registry.add_probe(probes.DiskProbeConfig, probes.DiskProbe)
    registry.add_probe(optics.ZonePlateProbeConfig, optics.OpticsProbe)
    registry.add_probe(optics.KBProbeConfig, optics.OpticsProbe)
    registry.add_scan(scans.RasterScanConfig, scans.RasterScan)
    registry.add_scan(scans.FermatScanConfig, scans.FermatScan)
    registry.add_simulation(simulate.SimulationConfig, simulate.build_simulator)
    registry.add_simulation(nearfield.ConeBeamConfig, nearfield.build_conebeam)
    registry.add_simulation(multislice.MultisliceSimConfig, multislice.build_multislice_simulator)
    registry.add_dataset(source.SimulatedDataConfig, source.build_simulated_dataset)
