"""Write the data-exchange HDF5 layout (Adorym's, Du et al. 2021 supplement section A).

Layout::

    /exchange/data            [n_angles, n_tiles, det_y, det_x], zero frequency at the
                              centre; float32 from ``write_dataset``, any real dtype read
                              (integer counts, e.g. uint16, stay in it: ``ptyframe.data.
                              patterns``); attribute quantity = "intensity" | "magnitude";
                              negative values mark unmeasured pixels
    /metadata/probe_pos_px    [n_tiles, 2] float64, (y, x) top-left corner of the probe
                              window in object pixels
    /metadata/energy_ev       scalar
    /metadata/psize_cm        scalar, object-plane pixel size
    /metadata/free_prop_cm    optional, propagation distance(s)
    /metadata/theta           optional, [n_angles] rotation angles in radians
    /metadata/object_shape_px optional, (ny, nx) object frame (ptyframe extension)
    /truth/object             optional, complex [n_slices, ny, nx] (simulations)
    /truth/probe              optional, complex [n_modes, M, M]
    /truth/illumination       optional, [ny, nx] sum over positions of the probe intensity
    /truth/<name>             optional, the simulated experiment's nuisances
                              (``ptyframe.simulation.nuisances``): positions_px [n_tiles, 2]
                              (where the beam hit), flux [n_tiles], probe_defocus_m
                              [n_tiles], probe_shift_px [n_tiles, 2]

Reading is ``ptyframe.data.dataset.PtychoDataset.open``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ptyframe.data.geometry import ScanGeometry
from ptyframe.io.atomic import atomic_path


@dataclass(frozen=True)
class Truth:
    """Ground truth of a simulated dataset."""

    object: np.ndarray  # complex [S, Ny, Nx]
    probe: np.ndarray  # complex [K, M, M]
    illumination: np.ndarray | None = None  # float [Ny, Nx]
    #: further ``/truth/<name>`` datasets (the nuisances of ``simulation.nuisances``)
    extras: dict[str, np.ndarray] = field(default_factory=dict)


def write_dataset(
    path: str | os.PathLike,
    patterns: np.ndarray,
    geometry: ScanGeometry,
    *,
    truth: Truth | None = None,
    quantity: str = "intensity",
    attrs: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> None:
    """Write centred ``patterns`` ``[n_angles, n_tiles, H, W]`` and metadata atomically."""
    import h5py

    patterns = np.asarray(patterns)
    if patterns.ndim == 3:
        patterns = patterns[None]
    if patterns.ndim != 4:
        raise ValueError(f"patterns must be [n_angles, n_tiles, H, W], got {patterns.shape}")
    with atomic_path(path, overwrite=overwrite) as tmp, h5py.File(tmp, "w") as f:
        ds = f.create_dataset(
            "exchange/data",
            data=patterns.astype(np.float32),
            chunks=(1, 1, *patterns.shape[2:]),
        )
        ds.attrs["quantity"] = quantity
        write_metadata(f, geometry, patterns.shape[0], truth, attrs)


def write_metadata(
    f: Any,
    geometry: ScanGeometry,
    n_angles: int = 1,
    truth: Truth | None = None,
    attrs: dict[str, Any] | None = None,
) -> None:
    """Write ``/metadata``, ``/truth`` and the root attributes into the open file ``f``."""
    f["metadata/probe_pos_px"] = np.asarray(geometry.positions_px, dtype=np.float64)
    f["metadata/energy_ev"] = float(geometry.energy_ev)
    f["metadata/psize_cm"] = float(geometry.pixel_size_m * 1e2)
    f["metadata/object_shape_px"] = np.asarray(geometry.object_shape, dtype=np.int64)
    if geometry.free_prop_m:
        f["metadata/free_prop_cm"] = np.asarray(geometry.free_prop_m) * 1e2
    if any(t != 0.0 for t in geometry.theta_rad) or n_angles > 1:
        f["metadata/theta"] = np.asarray(geometry.theta_rad, dtype=np.float64)
    if truth is not None:
        f["truth/object"] = truth.object
        f["truth/probe"] = truth.probe
        if truth.illumination is not None:
            f["truth/illumination"] = truth.illumination.astype(np.float32)
        for name, value in truth.extras.items():
            f[f"truth/{name}"] = np.asarray(value)
    for key, value in (attrs or {}).items():
        f.attrs[key] = value
