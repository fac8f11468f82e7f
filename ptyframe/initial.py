"""Build the starting guess of a reconstruction: vacuum object, a probe, the file's positions.

Probe choices (``init.probe``):

* ``disk`` (default, as in the PINE reference code): a raised-cosine disk, 1 for
  ``r <= r_outer / 2`` falling as a cosine to 0 at ``r_outer``, flat phase. ``r_outer`` is
  ``init.probe_radius_px``, by default 1.5 scan steps (the step: the median distance between
  neighbouring positions) kept within ``[M / 16, M / 4]`` (``default_disk_radius_px``): a
  flat-phase start no larger than the beam. A disk as large as a defocused beam (such as
  ``M / 4``) carries the beam's whole defocus phase error and ePIE can lock into a wrong
  probe, where smaller starts reach the noise floor (the measurements:
  ``docs/results/particle_film_defaults.md``).
* ``mean_pattern``: ``F^-1 sqrt(mean_r I_r)`` centred in the window (flat-phase estimate from
  the data; a sharp spot, so poor for strongly defocused probes).
* ``flat_field``: ``sqrt(mean_r I_r)`` itself, flat phase (near field: the mean hologram is the
  illumination's intensity, what holography calls the flat field).
* ``file``: ``/probe`` (or ``/truth/probe``) of an HDF5 file, or a ``.npy`` array.
* ``truth``: the dataset's ``/truth/probe`` (for studies).
* ``zone_plate``, ``kb``: the beam of a Fresnel zone plate or of a KB mirror pair (slits)
  described by ``init.optics`` (``ptyframe.simulation.optics``): diameter and outer zone (or
  focal length) and central stop, or apertures and focal lengths, and the sample's defocus.
  For a cone-beam near-field scan (``data.focus_to_sample_m``) the beam is taken without its
  curvature, in the Fresnel-scaled frame, at the defocus ``focus_to_sample_m`` unless
  ``init.optics.defocus_m`` says otherwise.

The disk and optics probes are scaled so that ``sum_k sum |P_k|^2`` equals the mean
measured photons per pattern (with the unitary FFT this matches the modelled intensity of a
vacuum object); the mean-pattern probe has that power by construction; file and truth
probes are used as given.
Extra incoherent modes (``probe_modes > 1``) start as the first mode times a phase ramp of
``k`` cycles (orthogonal to it for a symmetric probe) with 5 % of the power each.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.feed import PatternData
from ptyframe.errors import ConfigError, DataValidationError
from ptyframe.physics import fft
from ptyframe.simulation.optics import OpticsOptions
from ptyframe.state import ReconstructionState, complex_dtype

OPTICS_PROBES = ("zone_plate", "kb")
PROBE_KINDS = ("disk", "mean_pattern", "flat_field", "file", "truth", *OPTICS_PROBES)
OBJECT_KINDS = ("vacuum", "file", "truth")


@dataclass
class InitConfig:
    """How the unknowns start."""

    probe: str = "disk"
    probe_path: str | None = None
    #: Outer radius of the disk probe in pixels (None: 1.5 scan steps within [M/16, M/4]).
    probe_radius_px: float | None = None
    probe_modes: int = 1
    object: str = "vacuum"
    object_path: str | None = None
    #: The optic of ``probe=zone_plate`` or ``probe=kb`` (``ptyframe.simulation.optics``).
    optics: OpticsOptions = field(default_factory=OpticsOptions)

    def __post_init__(self) -> None:
        if self.probe not in PROBE_KINDS:
            raise ConfigError(
                f"init.probe = {self.probe!r} is unknown; choose one of {', '.join(PROBE_KINDS)}"
            )
        if self.object not in OBJECT_KINDS:
            raise ConfigError(
                f"init.object = {self.object!r} is unknown; choose one of {', '.join(OBJECT_KINDS)}"
            )
        if int(self.probe_modes) < 1:
            raise ConfigError(f"init.probe_modes = {self.probe_modes} must be >= 1")
        if self.probe_radius_px is not None and float(self.probe_radius_px) <= 0:
            raise ConfigError(f"init.probe_radius_px = {self.probe_radius_px} must be > 0")
        if self.probe == "file" and not self.probe_path:
            raise ConfigError("init.probe=file needs init.probe_path=FILE (.h5 or .npy)")
        if self.object == "file" and not self.object_path:
            raise ConfigError("init.object=file needs init.object_path=FILE (.h5 or .npy)")


def disk_probe(window: tuple[int, int], radius_px: float | None = None) -> np.ndarray:
    """Return the raised-cosine disk ``[M, N]`` (complex128, peak 1) centred in the window."""
    m, n = window
    outer = float(radius_px) if radius_px is not None else min(m, n) / 4.0
    inner = outer / 2.0
    y = np.arange(m) - m // 2
    x = np.arange(n) - n // 2
    r = np.hypot(y[:, None], x[None, :])
    t = np.clip((r - inner) / (outer - inner), 0.0, 1.0)
    return (0.5 * (1.0 + np.cos(np.pi * t))).astype(np.complex128)


def default_disk_radius_px(window: tuple[int, int], positions_px: np.ndarray) -> float:
    """Return the disk probe's default outer radius: 1.5 scan steps, within ``[M/16, M/4]``.

    The step is the median distance from each position to its nearest neighbour. A disk of
    outer radius 1.5 steps holds 90 % of its power within a diameter of 2.1 steps, i.e. it is
    the beam of a scan at ~52 % linear overlap: smaller than the beam of any scan with more
    overlap (see the module docstring for why a start larger than the beam is unsafe). The
    upper limit ``M / 4`` keeps the disk inside the window; much below 1.5 steps the start
    lights too little of the object between positions.
    """
    lo, hi = min(window) / 16.0, min(window) / 4.0
    pos = np.asarray(positions_px, dtype=np.float64).reshape(-1, 2)
    if pos.shape[0] < 2:
        return hi
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(pos).query(pos, k=2)
    return float(np.clip(1.5 * np.median(dist[:, 1]), lo, hi))


def mean_pattern_probe(meas: PatternData) -> np.ndarray:
    """Return ``F^-1 sqrt(mean I)`` centred in the window (complex128)."""
    mean_int = meas.mean_intensity()  # summed a chunk of patterns at a time
    wave = fft.far_field_adjoint(mean_int.sqrt().to(torch.complex128))
    return fft.to_centred(wave).numpy()


def flat_field_probe(meas: PatternData) -> np.ndarray:
    """Return ``sqrt(mean I)`` as recorded (detector order undone), flat phase (complex128)."""
    mean_int = meas.mean_intensity().double()  # summed a chunk of patterns at a time
    return fft.to_centred(mean_int).sqrt().numpy().astype(np.complex128)


def _read_array(path: str, keys: tuple[str, ...], what: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise DataValidationError(f"{path}: {what} file not found. Check init.{what}_path")
    if p.suffix == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except Exception as exc:
            raise DataValidationError(f"{path}: cannot read {what} array ({exc})") from exc
    import h5py

    try:
        with h5py.File(p, "r") as f:
            for key in keys:
                if key in f:
                    return np.asarray(f[key][()])
    except OSError as exc:
        raise DataValidationError(f"{path}: not a readable HDF5 file ({exc})") from exc
    raise DataValidationError(
        f"{path}: no {what} found (looked for {', '.join(keys)}). Give a recon.h5, a "
        "simulated dataset or a .npy array"
    )


def _checked(arr: np.ndarray, shape: tuple[int, ...], path: str, what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == len(shape) - 1:
        arr = arr[None]
    if arr.ndim != len(shape) or tuple(arr.shape[1:]) != shape[1:]:
        raise DataValidationError(
            f"{path}: {what} has shape {arr.shape}; this dataset needs [*, "
            f"{', '.join(map(str, shape[1:]))}]"
        )
    if not np.isfinite(arr).all():
        raise DataValidationError(f"{path}: {what} contains NaN or Inf values")
    return arr.astype(np.complex128)


def initial_probe(
    cfg: InitConfig,
    dataset: PtychoDataset,
    meas: PatternData,
    photons_per_pattern: float | None = None,
) -> np.ndarray:
    """Return the starting probe ``[K, M, N]`` complex128 scaled to the measured photons.

    ``photons_per_pattern`` overrides the mean over ``meas`` (a rank's shard) with the mean
    over every rank, so all ranks start from the same probe.
    """
    window = meas.window
    if cfg.probe == "disk":
        radius = cfg.probe_radius_px
        if radius is None:
            radius = default_disk_radius_px(window, dataset.geometry.positions_px)
        p0 = disk_probe(window, radius)[None]
    elif cfg.probe == "mean_pattern":
        p0 = mean_pattern_probe(meas)[None]
    elif cfg.probe == "flat_field":
        p0 = flat_field_probe(meas)[None]
    elif cfg.probe in OPTICS_PROBES:
        p0 = optics_probe(cfg, dataset, window)[None]
    elif cfg.probe == "file":
        assert cfg.probe_path is not None
        p0 = _checked(
            _read_array(cfg.probe_path, ("probe", "truth/probe"), "probe"),
            (1, *window),
            cfg.probe_path,
            "probe",
        )
    else:
        truth = dataset.truth
        if truth is None or truth.probe is None:
            raise ConfigError("init.probe=truth but the dataset has no /truth/probe")
        p0 = _checked(truth.probe, (1, *window), "dataset", "truth probe")
    k_have = p0.shape[0]
    modes = [p0[k] for k in range(min(k_have, int(cfg.probe_modes)))]
    x = np.arange(window[1]) / window[1]
    for k in range(len(modes), int(cfg.probe_modes)):
        ramp = np.exp(2j * np.pi * k * (x - 0.5))[None, :]
        extra = modes[0] * ramp
        extra *= np.sqrt(0.05 * np.sum(np.abs(modes[0]) ** 2) / np.sum(np.abs(extra) ** 2))
        modes.append(extra)
    probe = np.stack(modes)
    power = float(np.sum(np.abs(probe) ** 2))
    target = meas.mean_intensity_sum() if photons_per_pattern is None else photons_per_pattern
    if power <= 0:
        raise DataValidationError("the initial probe is zero everywhere")
    if target > 0 and cfg.probe in ("disk", *OPTICS_PROBES):
        probe *= np.sqrt(target / power)
    return probe


def optics_probe(cfg: InitConfig, dataset: PtychoDataset, window: tuple[int, int]) -> np.ndarray:
    """Return the beam of ``cfg.optics`` at the sample ``[M, N]`` (module docstring).

    A cone-beam scan (``focus_to_sample_m`` in the dataset's conventions) gets the beam
    without its curvature, at the defocus ``focus_to_sample_m`` unless the options set one.
    """
    opts = cfg.optics
    g = dataset.geometry
    z1 = dataset.conventions.get("focus_to_sample_m") if dataset.conventions else None
    if z1 is not None:
        z = float(opts.defocus_m) if opts.defocus_m is not None else float(z1)
        scaled = dataclasses.replace(opts, curvature=False)
        return scaled.field(cfg.probe, window, g.pixel_size_m, g.wavelength_m, z)
    return opts.field(cfg.probe, window, g.pixel_size_m, g.wavelength_m)


def initial_object(cfg: InitConfig, dataset: PtychoDataset) -> np.ndarray:
    """Return the starting object ``[1, Ny, Nx]`` complex128 (vacuum = 1)."""
    shape = (1, *dataset.geometry.object_shape)
    if cfg.object == "vacuum":
        return np.ones(shape, dtype=np.complex128)
    if cfg.object == "file":
        assert cfg.object_path is not None
        arr = _read_array(cfg.object_path, ("object", "truth/object"), "object")
        return _checked(arr, shape, cfg.object_path, "object")[:1]
    truth = dataset.truth
    if truth is None:
        raise ConfigError("init.object=truth but the dataset has no /truth/object")
    return _checked(truth.object, shape, "dataset", "truth object")[:1]


def initial_state(
    cfg: InitConfig,
    dataset: PtychoDataset,
    meas: PatternData,
    *,
    dtype: str = "complex64",
    device: str = "cpu",
    photons_per_pattern: float | None = None,
) -> ReconstructionState:
    """Return the starting ``ReconstructionState`` for ``dataset``."""
    cdt = complex_dtype(dtype)
    return ReconstructionState(
        torch.from_numpy(initial_object(cfg, dataset)).to(device=device, dtype=cdt),
        torch.from_numpy(initial_probe(cfg, dataset, meas, photons_per_pattern)).to(
            device=device, dtype=cdt
        ),
        torch.from_numpy(np.array(dataset.geometry.positions_px, dtype=np.float64)).to(device),
    )
