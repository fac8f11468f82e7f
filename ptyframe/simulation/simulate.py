"""Simulate a far-field ptychography dataset with ground truth.

``Simulator.run(phantom, probe, scan)`` does, with ``rng = default_rng(seed)`` split into
three child streams (phantom, scan jitter, noise; each reproducible on its own):

1. ``P_0 = probe.generate(M, dx, lambda)``, ``lambda = hc / energy_ev``; ``probe_modes = K > 1``
   adds orthogonal incoherent modes with powers in ratio ``mode_decay``
   (``probes.incoherent_modes``);
2. ``positions = scan.generate(D, rng_scan) + object_margin_px`` with ``D`` the 90 %-power
   diameter of ``sum_k |P_k|^2``; object frame ``object_frame(positions, M) + margin``;
3. ``O = phantom.generate(frame, rng_phantom)``;
4. noiseless intensities ``I_r = sum_k |F[S_r(O) P_k(. - f_r)]|^2`` by
   ``ptyframe.physics.farfield.FarFieldPtychography`` (torch complex128, batched), centred by
   ``ptyframe.physics.fft.to_centred`` -- the reconstruction's own forward model;
5. dose: the probe is scaled by ``sqrt(s)`` (intensities by ``s``) so that, averaged over
   the ``T`` positions of the *noiseless* patterns,

   * ``photons_per_pattern``:  ``(1/T) sum_r sum_q I_r(q) = photons_per_pattern``. By
     Parseval (unitary FFT) ``sum_q I_r(q) = sum_k sum |S_r(O) P_k|^2``, which equals the probe
     power ``sum_k sum |P_k|^2`` (the incident photons per exposure) for a pure-phase object
     and is smaller by the mean absorption otherwise;
   * ``i0_origin`` (the PINE paper's I_0, section 5: "diffraction intensities at the origin
     of 10^8 and 10^10 photons per pixel" for low and high dose):
     ``(1/T) sum_r I_r(q = 0) = i0_origin``, the zero-frequency pixel ``[M//2, M//2]`` of
     the centred pattern. With the unitary FFT, ``I_r(0) = |sum S_r(O) P|^2 / M^2``, i.e.
     ``M^2`` times the squared mean of the exit wave (for one mode);

   exactly one of the two is set;
6. ``noise="poisson"``: each pixel is an independent Poisson draw with the noiseless
   intensity as its mean (``rng_noise``); ``"none"`` keeps the noiseless intensities.

``SimulatedData.write`` stores the patterns (float32, centred) in the data-exchange layout
with ``/truth`` (object ``[1, Ny, Nx]`` complex64, probe ``[K, M, M]`` complex64 at the dose,
illumination ``sum_r sum_k |P_k(. - p_r)|^2`` on the object frame) and provenance attributes.

X-ray energy: 8 keV by default (``lambda = 0.155 nm``, Cu K-alpha; a typical hard X-ray
ptychography energy; the PINE paper simulates the hard X-ray beamline BL24XU at SPring-8),
pixel size 20 nm as in the PINE paper (its FRC axis ends at 25 um^-1 = 1 / (2 dx)).
"""

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ptyframe.data.exchange import Truth, write_dataset
from ptyframe.data.geometry import HC_EV_M, ScanGeometry, object_frame
from ptyframe.errors import ConfigError
from ptyframe.physics import fft
from ptyframe.physics.farfield import FarFieldPtychography
from ptyframe.physics.patches import scatter_add_patches, split_positions
from ptyframe.simulation.nuisances import (
    NuisanceConfig,
    NuisancePlan,
    noiseless_varying,
    plan_nuisances,
    probes_at,
)
from ptyframe.simulation.phantoms import require
from ptyframe.simulation.probes import incoherent_modes, probe_diameter_px

NOISE_MODELS = ("poisson", "none")


@dataclass
class SimulationConfig:
    """Far-field ptychography simulation: geometry, dose, noise, probe modes, seed."""

    name: str = "ptycho2d"
    window_px: int = 128
    energy_ev: float = 8000.0
    pixel_size_m: float = 20e-9
    photons_per_pattern: float | None = 1e6
    i0_origin: float | None = None
    noise: str = "poisson"
    probe_modes: int = 1
    mode_decay: float = 0.5
    object_margin_px: int = 0
    seed: int = 0
    nuisances: NuisanceConfig = field(default_factory=NuisanceConfig)

    def __post_init__(self) -> None:
        o = self.name
        require(o, "window_px", self.window_px, 4)
        require(o, "energy_ev", self.energy_ev, 0.0, lo_open=True)
        require(o, "pixel_size_m", self.pixel_size_m, 0.0, lo_open=True)
        if (self.photons_per_pattern is None) == (self.i0_origin is None):
            raise ConfigError(
                f"{o}: set exactly one dose, photons_per_pattern or i0_origin (got "
                f"photons_per_pattern={self.photons_per_pattern}, i0_origin={self.i0_origin}); "
                "e.g. `simulation.photons_per_pattern=null simulation.i0_origin=1e8`"
            )
        if self.photons_per_pattern is not None:
            require(o, "photons_per_pattern", self.photons_per_pattern, 0.0, lo_open=True)
        if self.i0_origin is not None:
            require(o, "i0_origin", self.i0_origin, 0.0, lo_open=True)
        if self.noise not in NOISE_MODELS:
            raise ConfigError(f"{o}.noise = {self.noise!r}; choose one of {NOISE_MODELS}")
        require(o, "probe_modes", self.probe_modes, 1)
        require(o, "mode_decay", self.mode_decay, 0.0, 1.0, lo_open=True)
        require(o, "object_margin_px", self.object_margin_px, 0)
        require(o, "seed", self.seed, 0)
        if not isinstance(self.nuisances, NuisanceConfig):  # a mapping from code or Hydra
            self.nuisances = NuisanceConfig(**dict(self.nuisances))

    @property
    def wavelength_m(self) -> float:
        return HC_EV_M / self.energy_ev


@dataclass
class Scene:
    """What a simulation images: random streams, probe modes ``[K, M, M]`` complex128 (unit
    dose), the probe's 90 %-power diameter, positions ``[T, 2]``, the object frame and the
    object ``[Ny, Nx]`` complex128."""

    rng: dict[str, np.random.Generator]
    modes: np.ndarray
    diameter_px: float
    positions_px: np.ndarray
    shape: tuple[int, int]
    object: np.ndarray
    plan: NuisancePlan


@dataclass
class SimulatedData:
    """A simulated dataset: centred patterns ``[1, T, M, M]`` float32, geometry, truth."""

    patterns: np.ndarray
    geometry: ScanGeometry
    truth: Truth
    attrs: dict[str, Any] = field(default_factory=dict)

    def write(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the data-exchange file with ``/truth`` and provenance attributes (atomic)."""
        write_dataset(
            path,
            self.patterns,
            self.geometry,
            truth=self.truth,
            attrs=self.attrs,
            overwrite=overwrite,
        )


def describe(component: Any) -> tuple[str, str]:
    """Return ``(name, JSON of its config)`` of a built phantom / probe / scan."""
    cfg = getattr(component, "config", None)
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return str(getattr(cfg, "name", type(component).__name__)), json.dumps(
            dataclasses.asdict(cfg), sort_keys=True
        )
    return str(getattr(component, "name", type(component).__name__)), "{}"


class Simulator:
    """Turn (phantom, probe, scan) into a ``SimulatedData``; see the module docstring."""

    def __init__(self, config: SimulationConfig, device: str = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        self.model = FarFieldPtychography()

    def streams(self) -> dict[str, np.random.Generator]:
        """Return the child generators ``phantom``, ``scan``, ``noise``, ``nuisance`` of ``seed``.

        Child ``i`` depends on ``i`` only, so the fourth stream leaves the first three as
        they were.
        """
        kids = np.random.SeedSequence(int(self.config.seed)).spawn(4)
        names = ("phantom", "scan", "noise", "nuisance")
        return {k: np.random.default_rng(s) for k, s in zip(names, kids, strict=True)}

    def probe_modes(self, probe: Any) -> np.ndarray:
        """Return the unscaled probe modes ``[K, M, M]`` complex128."""
        c = self.config
        p0 = np.asarray(
            probe.generate(int(c.window_px), c.pixel_size_m, c.wavelength_m), dtype=np.complex128
        )
        m = int(c.window_px)
        if p0.shape != (m, m):
            raise ConfigError(f"probe returned shape {p0.shape}, expected ({m}, {m})")
        return incoherent_modes(p0, int(c.probe_modes), float(c.mode_decay))

    def noiseless(
        self, obj: np.ndarray, modes: np.ndarray, positions_px: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return centred intensities ``[T, M, M]`` float64 and illumination ``[Ny, Nx]``."""
        obj_t = torch.from_numpy(np.ascontiguousarray(obj[None])).to(self.device)
        probe_t = torch.from_numpy(np.ascontiguousarray(modes)).to(self.device)
        pos_t = torch.from_numpy(positions_px).to(self.device)
        k, m = modes.shape[0], modes.shape[-1]
        batch = max(1, (1 << 22) // (k * m * m))
        out = np.empty((positions_px.shape[0], m, m))
        illum = torch.zeros(obj.shape, dtype=torch.float64, device=self.device)
        for i in range(0, positions_px.shape[0], batch):
            pos = pos_t[i : i + batch]
            inten = self.model.intensities(obj_t, probe_t, pos)
            out[i : i + batch] = fft.to_centred(inten).cpu().numpy()
            corners, frac = split_positions(pos)
            lit = self.model.shifted_probes(probe_t, frac).abs().square().sum(dim=1)
            scatter_add_patches(illum, lit, corners)
        return out, illum.cpu().numpy()

    def scene(self, phantom: Any, probe: Any, scan: Any) -> Scene:
        """Return the probe modes, positions and object (module docstring, steps 1-3)."""
        c = self.config
        rng = self.streams()
        m = int(c.window_px)
        modes = self.probe_modes(probe)
        diameter = probe_diameter_px(modes)
        positions = np.asarray(scan.generate(diameter, rng["scan"]), dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 2 or positions.shape[0] == 0:
            raise ConfigError(f"scan returned positions of shape {positions.shape}, want [N, 2]")
        if positions.min() < 0:
            raise ConfigError("scan returned negative positions; shift them to >= 0")
        positions = positions + float(c.object_margin_px)
        plan = plan_nuisances(c.nuisances, positions, rng["nuisance"], c.object_margin_px)
        positions = plan.true_positions_px  # the beam's; the file records plan.recorded_...
        ny, nx = object_frame(np.concatenate([positions, plan.recorded_positions_px]), (m, m))
        shape = (ny + int(c.object_margin_px), nx + int(c.object_margin_px))
        obj = np.asarray(phantom.generate(shape, rng["phantom"]), dtype=np.complex128)
        if obj.shape != shape:
            raise ConfigError(f"phantom returned shape {obj.shape}, expected {shape}")
        return Scene(rng, modes, diameter, positions, shape, obj, plan)

    def dose_scale(self, totals: np.ndarray, origins: np.ndarray) -> tuple[float, str]:
        """Return the intensity scale ``s`` and the dose mode (module docstring, step 5).

        ``totals`` ``[T]`` and ``origins`` ``[T]``: each noiseless pattern's sum and its
        zero-frequency pixel.
        """
        c = self.config
        if c.photons_per_pattern is not None:
            return float(c.photons_per_pattern) / float(totals.mean()), "photons_per_pattern"
        assert c.i0_origin is not None  # the config holds exactly one dose
        return float(c.i0_origin) / float(origins.mean()), "i0_origin"

    def run(self, phantom: Any, probe: Any, scan: Any) -> SimulatedData:
        """Simulate the dataset (module docstring, steps 1-6)."""
        c = self.config
        sc = self.scene(phantom, probe, scan)
        rng, modes, positions, shape, obj = sc.rng, sc.modes, sc.positions_px, sc.shape, sc.object
        diameter = sc.diameter_px
        m = int(c.window_px)
        plan, lam, dx = sc.plan, c.wavelength_m, c.pixel_size_m
        if c.nuisances.varies_probe:  # a probe per pattern (simulation.nuisances)
            z, s_px = plan.defocus_m, plan.shift_px
            clean, illum = noiseless_varying(
                obj, lambda sl: probes_at(modes, z[sl], s_px[sl], dx, lam), positions, (m, m)
            )
        else:
            clean, illum = self.noiseless(obj, modes, positions)
        totals, origins = clean.sum(axis=(1, 2)), clean[:, m // 2, m // 2]
        total, origin = float(totals.mean()), float(origins.mean())
        scale, mode = self.dose_scale(totals, origins)
        clean *= scale
        clean *= plan.flux[:, None, None]  # all ones without flux fluctuation
        if c.noise == "poisson":
            patterns = rng["noise"].poisson(clean).astype(np.float32)
        else:
            patterns = clean.astype(np.float32)
        geometry = ScanGeometry(
            plan.recorded_positions_px, (m, m), shape, float(c.energy_ev), float(c.pixel_size_m)
        )
        truth = Truth(
            object=obj[None].astype(np.complex64),
            probe=(modes * np.sqrt(scale)).astype(np.complex64),
            illumination=(illum * scale).astype(np.float32),
            extras=plan.truth_extras(),
        )
        attrs = self._attrs(phantom, probe, scan, diameter, mode, total * scale, origin * scale)
        return SimulatedData(patterns[None], geometry, truth, attrs)

    def _attrs(
        self,
        phantom: Any,
        probe: Any,
        scan: Any,
        diameter: float,
        mode: str,
        photons: float,
        i0: float,
    ) -> dict[str, Any]:
        from ptyframe import __version__

        attrs: dict[str, Any] = {
            "simulation": self.config.name,
            "simulation_config": json.dumps(dataclasses.asdict(self.config), sort_keys=True),
        }
        for kind, comp in (("phantom", phantom), ("probe", probe), ("scan", scan)):
            attrs[kind], attrs[f"{kind}_config"] = describe(comp)
        overlap = getattr(getattr(scan, "config", None), "overlap", None)
        step_px = getattr(getattr(scan, "config", None), "step_px", None)
        if step_px is not None:  # a fixed pitch: the overlap follows from the probe
            overlap = 1.0 - float(step_px) / float(diameter)
        attrs.update(
            seed=int(self.config.seed),
            dose_mode=mode,
            photons_per_pattern=float(photons),
            i0_origin=float(i0),
            noise=self.config.noise,
            probe_diameter_px=float(diameter),
            wavelength_m=float(self.config.wavelength_m),
            ptyframe_version=__version__,
        )
        if overlap is not None:
            attrs["overlap"] = float(overlap)
        return attrs


def build_simulator(config: SimulationConfig, context: Any = None) -> Simulator:
    """Far-field ptychography simulation (phantom x probe x scan, dose, Poisson noise)."""
    device = getattr(context, "device", "cpu") if context is not None else "cpu"
    return Simulator(config, device=device)


def _component(reg: Any, kind: str, spec: Any, default: str) -> Any:
    if hasattr(spec, "generate"):
        return spec
    if isinstance(spec, Mapping) and "name" not in spec:
        spec = {"name": default, **spec}
    return reg.build(kind, spec)


def simulate_dataset(
    phantom: Any = "particles",
    probe: Any = "focused",
    scan: Any = "raster",
    registry: Any = None,
    **settings: Any,
) -> SimulatedData:
    """Simulate a dataset from registered components, by name, with overrides.

    ``phantom``, ``probe`` and ``scan`` are each a registered name, a mapping of config
    overrides (``{"name": "fermat", "n_points": 50}``; without ``name`` the default name of the
    argument is used), a config dataclass, or an already built object with ``generate``.
    ``settings`` are ``SimulationConfig`` fields (``window_px=64, noise="none", seed=3``);
    giving ``i0_origin`` alone switches the dose mode (``photons_per_pattern`` becomes None).
    ``registry`` defaults to ``ptyframe.registry()``.
    """
    if registry is None:
        from ptyframe.plugins import default_registry

        registry = default_registry()
    if settings.get("i0_origin") is not None and "photons_per_pattern" not in settings:
        settings["photons_per_pattern"] = None
    sim = registry.build("simulation", {"name": "ptycho2d", **settings})
    return sim.run(
        _component(registry, "phantom", phantom, "particles"),
        _component(registry, "probe", probe, "focused"),
        _component(registry, "scan", scan, "raster"),
    )
