"""Simulate a near-field (cone-beam) ptychography scan as a beamline records it, in CXI.

Geometry (the Fresnel scaling theorem; ``ptyframe.data.conebeam``): a beam diverging from a
focus ``z1`` upstream of the sample, a detector of pitch ``p`` at ``z2`` downstream. The
hologram is the plane-wave hologram of the scaled geometry, magnified by
``M = (z1 + z2) / z1``: object pixel ``dx = p / M``, distance ``z = z2 / M`` (with
``focus_to_sample_m = None`` a plane wave: ``M = 1``). Per scan position ``r`` (top-left
corner ``c_r``, fraction ``f_r``) and incoherent mode ``k``::

    psi_rk  = O[c_r - b : c_r + M_w + b] * T_f_r Q_k          (window M_w + 2b, b the margin)
    I_r     = g * s_r * sum_k | C_b F^-1[ H_z F psi_rk ] |^2   (H_z paraxial, C_b the crop)
    N_r     = Poisson(I_r), dead pixels 0 (and marked in the detector mask)

with ``Q_k`` the illumination of the scaled frame: the beam of the optic (``probe=kb`` or
``zone_plate``, ``ptyframe.simulation.optics``) without its curvature at ``z1`` (plane wave:
with it, at the probe's own defocus), times the flat-field structure of the mirrors
(``stripes_rms``: a smooth random profile along each axis, in amplitude and phase), split
into ``probe_modes`` incoherent modes (``probes.incoherent_modes``). The margin ``b`` is two
fringe reaches ``lambda z / (2 dx^2)`` plus 4 px unless given: the object extends beyond the
detector's view and no fringe wraps round. Nuisances: the photons per frame scaled to
``photons_per_frame`` on average, a flux ``s_r = 1 + flux_rms n_r`` per frame, a detector gain
``g = 1 + gain_rms n`` per pixel, ``dead_fraction`` of the pixels dead, Poisson counts.

The file is CXI 1.6 as a beamline writes it (``ptyframe.data.read_cxi`` reads it): uint32
counts ``[n, M_w, M_w]`` as recorded (real-space holograms, no shift), the detector distance
``z2``, its pitch, its mask (1 = dead), the photon energy in joules and the sample
translations ``(x, y, 0) = (col, row) dx`` of the beam centres in metres. Nothing in it says
near field or ``z1``: the user gives ``data.focus_to_sample_m`` (the measured scan this copies
was written that way). The truth (object frame, probe modes in the scaled frame,
illumination) is stored under ``/truth`` beside the CXI groups.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ptyframe.data.exchange import Truth
from ptyframe.data.geometry import HC_EV_M, ScanGeometry, object_frame
from ptyframe.data.reader import EV_J
from ptyframe.errors import ConfigError
from ptyframe.io.atomic import atomic_path
from ptyframe.physics import fft
from ptyframe.physics.detector import NearFieldPropagator, fringe_reach_px
from ptyframe.physics.patches import extract_patches, scatter_add_patches, split_positions
from ptyframe.physics.subpixel import shifted_probes
from ptyframe.simulation.optics import KBProbeConfig, ZonePlateProbeConfig
from ptyframe.simulation.phantoms import require
from ptyframe.simulation.probes import incoherent_modes

NOISE_MODELS = ("poisson", "none")


@dataclass
class ConeBeamConfig:
    """A near-field cone-beam scan (module docstring); defaults copy a measured one."""

    name: str = "conebeam"
    energy_ev: float = 12660.0
    #: ``z1``; None: a plane wave (no magnification).
    focus_to_sample_m: float | None = 3.65e-3
    detector_distance_m: float = 1.12
    detector_pixel_m: float = 55e-6
    window_px: int = 100
    #: Median distance between neighbouring scan positions on the sample (metres).
    step_m: float = 1.2e-6
    photons_per_frame: float = 1e7
    noise: str = "poisson"
    probe_modes: int = 3
    mode_decay: float = 0.25
    stripes_rms: float = 0.05
    flux_rms: float = 0.02
    gain_rms: float = 0.02
    dead_fraction: float = 0.002
    #: Simulation margin around each window (px); None: two fringe reaches + 4.
    margin_px: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        o = self.name
        for key in ("energy_ev", "detector_distance_m", "detector_pixel_m", "step_m"):
            require(o, key, getattr(self, key), 0.0, lo_open=True)
        if self.focus_to_sample_m is not None:
            require(o, "focus_to_sample_m", self.focus_to_sample_m, 0.0, lo_open=True)
        require(o, "window_px", self.window_px, 8)
        require(o, "photons_per_frame", self.photons_per_frame, 0.0, lo_open=True)
        if self.noise not in NOISE_MODELS:
            raise ConfigError(f"{o}.noise = {self.noise!r}; choose one of {NOISE_MODELS}")
        require(o, "probe_modes", self.probe_modes, 1)
        require(o, "mode_decay", self.mode_decay, 0.0, 1.0, lo_open=True)
        for key in ("stripes_rms", "flux_rms", "gain_rms"):
            require(o, key, getattr(self, key), 0.0, 0.5)
        require(o, "dead_fraction", self.dead_fraction, 0.0, 0.5)
        if self.margin_px is not None:
            require(o, "margin_px", self.margin_px, 0)
        require(o, "seed", self.seed, 0)

    @property
    def wavelength_m(self) -> float:
        return HC_EV_M / self.energy_ev

    @property
    def magnification(self) -> float:
        """Return ``M = (z1 + z2) / z1`` (1 for a plane wave)."""
        z1 = self.focus_to_sample_m
        return 1.0 if z1 is None else (z1 + self.detector_distance_m) / z1

    @property
    def pixel_size_m(self) -> float:
        """Return the object pixel ``p / M``."""
        return self.detector_pixel_m / self.magnification

    @property
    def distance_m(self) -> float:
        """Return the effective propagation distance ``z2 / M``."""
        return self.detector_distance_m / self.magnification


@dataclass
class ConeBeamData:
    """A simulated scan: recorded frames, what the detector knew, the truth."""

    frames: np.ndarray  # [n, M, M] uint32 counts as recorded
    mask: np.ndarray  # [M, M] uint32, 1 = dead pixel
    translations_m: np.ndarray  # [n, 3] sample translations (x, y, 0)
    geometry: ScanGeometry  # the scaled frame (object pixel, effective distance)
    truth: Truth
    config: ConeBeamConfig
    attrs: dict[str, Any] = field(default_factory=dict)

    def write(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the CXI file (module docstring) atomically."""
        write_cxi_scan(path, self, overwrite)


def stripes(
    shape: tuple[int, int], rms: float, rng: np.random.Generator, corr_px: float
) -> np.ndarray:
    """Return ``(1 + a_y a_x) exp(i (p_y + p_x))`` ``[M, N]``: smooth 1-D profiles along each
    axis of relative rms ``rms`` (amplitude) and ``rms`` rad (phase), correlation ``corr_px``."""
    out = np.ones(shape, dtype=np.complex128)
    if rms == 0:
        return out
    for axis, n in enumerate(shape):
        f = np.fft.fftfreq(n)
        filt = np.exp(-0.5 * (f * corr_px) ** 2)
        amp = np.fft.ifft(np.fft.fft(rng.standard_normal(n)) * filt).real
        phs = np.fft.ifft(np.fft.fft(rng.standard_normal(n)) * filt).real
        amp *= rms / (amp.std() or 1.0)
        phs *= rms / (phs.std() or 1.0)
        prof = (1.0 + amp) * np.exp(1j * phs)
        out *= prof[:, None] if axis == 0 else prof[None, :]
    return out


class ConeBeamSimulator:
    """Turn (phantom, probe, scan) into a ``ConeBeamData`` (module docstring)."""

    def __init__(self, config: ConeBeamConfig, device: str = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)

    @property
    def margin_px(self) -> int:
        c = self.config
        if c.margin_px is not None:
            return int(c.margin_px)
        reach = fringe_reach_px(c.pixel_size_m, c.wavelength_m, c.distance_m)
        return int(math.ceil(2 * reach)) + 4

    def streams(self) -> dict[str, np.random.Generator]:
        """Return the child generators of ``seed``: phantom, scan, probe, noise, detector."""
        keys = ("phantom", "scan", "probe", "noise", "detector")
        kids = np.random.SeedSequence(int(self.config.seed)).spawn(len(keys))
        return {k: np.random.default_rng(s) for k, s in zip(keys, kids, strict=True)}

    def illumination(self, probe: Any, rng: np.random.Generator) -> np.ndarray:
        """Return the unscaled modes ``[K, W, W]`` on the big window ``W = M + 2b``."""
        c = self.config
        w = int(c.window_px) + 2 * self.margin_px
        opts = getattr(probe, "config", None)
        if isinstance(opts, ZonePlateProbeConfig | KBProbeConfig):  # an optic: its beam here
            cone = c.focus_to_sample_m is not None
            if cone:
                opts = dataclasses.replace(opts, curvature=False)
            z = c.focus_to_sample_m if cone else None
            p0 = opts.field(opts.name, (w, w), c.pixel_size_m, c.wavelength_m, z)
        else:
            p0 = np.asarray(probe.generate(w, c.pixel_size_m, c.wavelength_m), np.complex128)
        p0 = p0 * stripes((w, w), float(c.stripes_rms), rng, corr_px=w / 6.0)
        return incoherent_modes(p0, int(c.probe_modes), float(c.mode_decay))

    def positions(self, scan: Any, rng: np.random.Generator) -> np.ndarray:
        """Return top-left corners ``[n, 2]`` (object pixels), the smallest at 0.5 + margin."""
        c = self.config
        step_px = c.step_m / c.pixel_size_m
        overlap = float(getattr(getattr(scan, "config", None), "overlap", 0.0) or 0.0)
        pos = np.asarray(scan.generate(step_px / (1.0 - overlap), rng), dtype=np.float64)
        if pos.ndim != 2 or pos.shape[1] != 2 or pos.shape[0] == 0:
            raise ConfigError(f"scan returned positions of shape {pos.shape}, want [N, 2]")
        return pos - pos.min(axis=0) + 0.5 + self.margin_px

    def holograms(
        self, obj: np.ndarray, modes: np.ndarray, positions_px: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return noiseless holograms ``[n, M, M]`` (as recorded) and the illumination map.

        ``positions_px`` are corners of the detector window; the exit wave takes ``b`` more on
        every side.
        """
        c, b, m = self.config, self.margin_px, int(self.config.window_px)
        prop = NearFieldPropagator(
            (m, m), c.pixel_size_m, c.wavelength_m, c.distance_m, b, dtype=torch.complex128
        )
        obj_t = torch.from_numpy(np.ascontiguousarray(obj)).to(self.device)
        probe_t = torch.from_numpy(np.ascontiguousarray(modes)).to(self.device)
        pos_t = torch.from_numpy(positions_px - b).to(self.device)
        k, w = modes.shape[0], modes.shape[-1]
        batch = max(1, (1 << 21) // (k * w * w))
        out = np.empty((positions_px.shape[0], m, m))
        illum = torch.zeros(obj.shape, dtype=torch.float64, device=self.device)
        for i in range(0, positions_px.shape[0], batch):
            corners, frac = split_positions(pos_t[i : i + batch])
            probes = shifted_probes(probe_t, frac.to(self.device))  # [B, K, W, W]
            psi = extract_patches(obj_t, corners, (w, w)).unsqueeze(1) * probes
            wave = fft.to_centred(prop.forward(psi))  # detector order -> as recorded
            out[i : i + batch] = (wave.real.square() + wave.imag.square()).sum(1).cpu().numpy()
            scatter_add_patches(illum, probes.abs().square().sum(1), corners)
        return out, illum.cpu().numpy()

    def run(self, phantom: Any, probe: Any, scan: Any) -> ConeBeamData:
        """Simulate the scan (module docstring)."""
        c, b, m = self.config, self.margin_px, int(self.config.window_px)
        rng = self.streams()
        modes = self.illumination(probe, rng["probe"])
        pos = self.positions(scan, rng["scan"])
        ny, nx = object_frame(pos, (m, m))
        big = (ny + b, nx + b)  # the object extends b beyond the frame on every side
        obj = np.asarray(phantom.generate(big, rng["phantom"]), dtype=np.complex128)
        if obj.shape != big:
            raise ConfigError(f"phantom returned shape {obj.shape}, expected {big}")
        clean, illum = self.holograms(obj, modes, pos)
        scale = float(c.photons_per_frame) / float(clean.sum(axis=(1, 2)).mean())
        clean *= scale
        det = rng["detector"]
        flux = 1.0 + float(c.flux_rms) * det.standard_normal(len(pos))
        gain = 1.0 + float(c.gain_rms) * det.standard_normal((m, m))
        rate = np.clip(clean * flux[:, None, None] * gain[None], 0.0, None)
        if c.noise == "poisson":
            counts = rng["noise"].poisson(rate)
        else:
            counts = np.round(rate)
        dead = det.random((m, m)) < float(c.dead_fraction)
        counts[:, dead] = 0
        frame_pos = pos - b  # corners in the truth frame (the object without its margin)
        geometry = ScanGeometry(
            frame_pos, (m, m), (ny - b, nx - b), c.energy_ev, c.pixel_size_m, (c.distance_m,)
        )
        half = np.array([m // 2, m // 2], dtype=np.float64)
        centres = (frame_pos + half) * c.pixel_size_m
        trans = np.c_[centres[:, 1], centres[:, 0], np.zeros(len(pos))]
        crop = slice(b, b + m)
        truth = Truth(
            object=obj[None, b : b + ny - b, b : b + nx - b].astype(np.complex64),
            probe=(modes[:, crop, crop] * math.sqrt(scale)).astype(np.complex64),
            illumination=(illum[b : b + ny - b, b : b + nx - b] * scale).astype(np.float32),
        )
        attrs = {
            "simulation": c.name,
            "simulation_config": json.dumps(dataclasses.asdict(c), sort_keys=True),
            "magnification": c.magnification,
            "object_pixel_m": c.pixel_size_m,
            "effective_distance_m": c.distance_m,
            "margin_px": b,
            "flux": json.dumps(flux.tolist()),
        }
        return ConeBeamData(
            counts.astype(np.uint32), dead.astype(np.uint32), trans, geometry, truth, c, attrs
        )


def write_cxi_scan(path: str | os.PathLike, data: ConeBeamData, overwrite: bool = False) -> None:
    """Write ``data`` as CXI 1.6 with ``/truth`` (module docstring)."""
    import h5py

    c = data.config
    with atomic_path(path, overwrite=overwrite) as tmp, h5py.File(tmp, "w") as f:
        f["cxi_version"] = 160
        f["number_of_entries"] = 1
        det = f.create_group("entry_1/instrument_1/detector_1")
        det.create_dataset("data", data=data.frames, chunks=(1, *data.frames.shape[1:]))
        det["distance"] = float(c.detector_distance_m)
        det["x_pixel_size"] = float(c.detector_pixel_m)
        det["y_pixel_size"] = float(c.detector_pixel_m)
        det["mask"] = data.mask
        f["entry_1/instrument_1/source_1/energy"] = float(c.energy_ev) * EV_J
        f["entry_1/sample_1/geometry_1/translation"] = data.translations_m
        f["entry_1/data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
        f["entry_1/data_1/translation"] = h5py.SoftLink("/entry_1/sample_1/geometry_1/translation")
        sim = f.create_group("entry_1/simulation_1")
        for key, value in data.attrs.items():
            sim.attrs[key] = value
        t = f.create_group("truth")
        t["object"] = data.truth.object
        t["probe"] = data.truth.probe
        if data.truth.illumination is not None:
            t["illumination"] = data.truth.illumination


def build_conebeam(config: ConeBeamConfig, context: Any = None) -> ConeBeamSimulator:
    """Near-field cone-beam scan simulation (phantom x optic x scan), written as CXI."""
    device = getattr(context, "device", "cpu") if context is not None else "cpu"
    return ConeBeamSimulator(config, device=device)
