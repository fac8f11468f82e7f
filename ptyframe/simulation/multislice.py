"""Simulate ptychography of a thick sample: slices separated by a gap (multislice).

The thick-sample case of the Adorym supplement (section D, eq. S9) and of e3PIE (Maiden,
Humphry & Rodenburg, J. Opt. Soc. Am. A 29, 1606 (2012)): ``n_slices`` independent phantoms
(each drawn from its own random stream, so two ``particles`` slices differ) ``slice_gap_m``
apart. Per position ``r`` and mode ``k`` the exit wave is the multislice chain of
``ptyframe.physics.exitwave.MultisliceExitWave`` (multiply, Fresnel over the gap, multiply,
...) and the pattern ``I_r = sum_k |F psi_rk|^2`` (far field, unitary FFT), or
``|P_z psi_rk|^2`` over ``free_prop_m`` (near field, on a window ``margin_px`` larger on every
side, cropped). Dose and noise as ``ptyframe.simulation.simulate`` (steps 5-6); the file is
data-exchange with ``/truth/object`` ``[S, Ny, Nx]``.

The default gap, ``20 dx^2 / lambda``, is twenty depths of field of one pixel: the two slices
are far enough apart for the data to tell them apart (and a single slice cannot explain them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptyframe.data.exchange import Truth
from ptyframe.data.geometry import ScanGeometry, object_frame
from ptyframe.errors import ConfigError
from ptyframe.physics import fft
from ptyframe.physics.detector import NearFieldPropagator
from ptyframe.physics.exitwave import MultisliceExitWave
from ptyframe.physics.patches import extract_patches, scatter_add_patches, split_positions
from ptyframe.physics.subpixel import shifted_probes
from ptyframe.simulation.phantoms import require
from ptyframe.simulation.probes import probe_diameter_px
from ptyframe.simulation.simulate import SimulatedData, SimulationConfig, Simulator


@dataclass
class MultisliceSimConfig(SimulationConfig):
    """Thick-sample ptychography: ``n_slices`` phantoms ``slice_gap_m`` apart."""

    name: str = "multislice"
    n_slices: int = 2
    #: Gap between consecutive slices (m); None: twenty depths of field, ``20 dx^2 / lambda``.
    slice_gap_m: float | None = None
    #: None: far field; a distance (m): near field over it from the last slice.
    free_prop_m: float | None = None
    margin_px: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.name, "n_slices", self.n_slices, 2)
        if self.slice_gap_m is not None:
            require(self.name, "slice_gap_m", self.slice_gap_m, 0.0, lo_open=True)
        if self.free_prop_m is not None:
            require(self.name, "free_prop_m", self.free_prop_m, 0.0, lo_open=True)
        require(self.name, "margin_px", self.margin_px, 0)
        if self.free_prop_m is None and self.margin_px:
            raise ConfigError(f"{self.name}.margin_px needs a near-field free_prop_m")

    @property
    def gap_m(self) -> float:
        """Return the gap between slices."""
        if self.slice_gap_m is not None:
            return float(self.slice_gap_m)
        return 20.0 * self.pixel_size_m**2 / self.wavelength_m


class MultisliceSimulator(Simulator):
    """``Simulator`` with a stack of slices (module docstring)."""

    config: MultisliceSimConfig

    def patterns(
        self, obj: np.ndarray, modes: np.ndarray, positions_px: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return centred patterns (far) or images (near) ``[T, M, M]`` and the illumination.

        ``obj`` ``[S, Ny, Nx]``; ``modes`` ``[K, W, W]`` with ``W = M + 2 margin``; positions
        are corners of the ``M x M`` detector window.
        """
        c = self.config
        b, m = int(c.margin_px), int(c.window_px)
        w = m + 2 * b
        chain = MultisliceExitWave(
            int(c.n_slices), (w, w), c.pixel_size_m, c.wavelength_m, c.gap_m,
            dtype=torch.complex128, device=self.device,
        )  # fmt: skip
        near = None
        if c.free_prop_m is not None:
            near = NearFieldPropagator(
                (m, m), c.pixel_size_m, c.wavelength_m, float(c.free_prop_m), b,
                dtype=torch.complex128, device=self.device,
            )  # fmt: skip
        obj_t = torch.from_numpy(np.ascontiguousarray(obj)).to(self.device)
        probe_t = torch.from_numpy(np.ascontiguousarray(modes)).to(self.device)
        pos_t = torch.from_numpy(positions_px - b).to(self.device)
        batch = max(1, (1 << 21) // (modes.shape[0] * w * w * int(c.n_slices)))
        out = np.empty((positions_px.shape[0], m, m))
        illum = torch.zeros(obj.shape[1:], dtype=torch.float64, device=self.device)
        for i in range(0, positions_px.shape[0], batch):
            corners, frac = split_positions(pos_t[i : i + batch])
            probes = shifted_probes(probe_t, frac)
            windows = extract_patches(obj_t, corners, (w, w)).movedim(1, 0)  # [S, B, W, W]
            psi, _ = chain.forward(windows, probes)
            wave = fft.far_field(psi) if near is None else near.forward(psi)  # detector order
            inten = fft.to_centred((wave.real.square() + wave.imag.square()).sum(1))
            out[i : i + batch] = inten.cpu().numpy()
            scatter_add_patches(illum, probes.abs().square().sum(1), corners)
        return out, illum.cpu().numpy()

    def run(self, phantom: Any, probe: Any, scan: Any) -> SimulatedData:
        """Simulate the thick-sample dataset (module docstring)."""
        c = self.config
        rng = self.streams()
        b, m = int(c.margin_px), int(c.window_px)
        modes = self.probe_modes(probe)
        if b:
            modes = np.pad(modes, ((0, 0), (b, b), (b, b)), mode="edge")
        diameter = probe_diameter_px(modes)
        positions = np.asarray(scan.generate(diameter, rng["scan"]), np.float64)
        positions = positions - positions.min(axis=0) + float(c.object_margin_px) + b
        ny, nx = object_frame(positions, (m, m))
        shape = (ny + b + int(c.object_margin_px), nx + b + int(c.object_margin_px))
        kids = rng["phantom"].spawn(int(c.n_slices))
        obj = np.stack([np.asarray(phantom.generate(shape, k), np.complex128) for k in kids])
        clean, illum = self.patterns(obj, modes, positions)
        total = float(clean.sum(axis=(1, 2)).mean())
        scale = float(c.photons_per_pattern or total) / total
        clean *= scale
        pats = rng["noise"].poisson(clean) if c.noise == "poisson" else clean
        frame = (shape[0] - 2 * b, shape[1] - 2 * b)
        geometry = ScanGeometry(
            positions - b, (m, m), frame, float(c.energy_ev), float(c.pixel_size_m),
            () if c.free_prop_m is None else (float(c.free_prop_m),),
        )  # fmt: skip
        crop = (slice(None), slice(b, b + frame[0]), slice(b, b + frame[1]))
        truth = Truth(
            object=obj[crop].astype(np.complex64),
            probe=(modes[:, b : b + m, b : b + m] * np.sqrt(scale)).astype(np.complex64),
            illumination=(illum[crop[1:]] * scale).astype(np.float32),
        )
        attrs = self._attrs(phantom, probe, scan, diameter, "photons_per_pattern",
                            total * scale, 0.0)  # fmt: skip
        attrs["slice_gap_m"] = c.gap_m
        return SimulatedData(np.asarray(pats, np.float32)[None], geometry, truth, attrs)


def build_multislice_simulator(config: MultisliceSimConfig, context: Any = None) -> Any:
    """Thick-sample (multislice) ptychography simulation, far or near field."""
    if config.photons_per_pattern is None:
        raise ConfigError(f"{config.name} takes its dose as photons_per_pattern")
    device = getattr(context, "device", "cpu") if context is not None else "cpu"
    return MultisliceSimulator(config, device=device)
