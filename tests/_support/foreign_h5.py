"""Write CXI, NXcxi_ptycho and PtyLab files with plain h5py, from their published layouts.

Each writer takes a ptyframe dataset (positions in object pixels, pixel size ``dx``) and a
detector (pitch ``p``); the distance is chosen so that ``lambda z / (M p) = dx``.
``mutate(parts)`` edits the HDF5 entries (path -> array, ``None`` drops it) before writing;
``attrs:<path>@<name>`` entries set attributes; ``link:<path>`` entries make soft links.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from ptyframe.data.dataset import PtychoDataset

HC_J_M = 1.986445857e-25
EV_J = 1.602176634e-19
PITCH_M = 75e-6


def _geometry(ds: PtychoDataset) -> tuple[float, float, int, np.ndarray]:
    g = ds.geometry
    lam = g.wavelength_m
    m = g.window[0]
    dist = g.pixel_size_m * m * PITCH_M / lam
    return lam, dist, m, g.positions_px * g.pixel_size_m


def _write(path: Path, parts: dict) -> None:
    with h5py.File(path, "w") as f:
        for key, value in parts.items():
            if value is None or key.startswith(("attrs:", "link:")):
                continue
            f[key] = value
        for key, value in parts.items():
            if key.startswith("link:") and value is not None and value in f:
                f[key[5:]] = h5py.SoftLink("/" + value)
            if key.startswith("attrs:") and value is not None:
                obj, name = key[6:].rsplit("@", 1)
                if obj in f:
                    f[obj].attrs[name] = value


def cxi_parts(ds: PtychoDataset, frames: np.ndarray | None = None) -> dict:
    """Return the CXI 1.6 entries of ``ds`` (cdtools' conventions: sample translation)."""
    lam, dist, m, pos_m = _geometry(ds)
    n = ds.n_tiles
    det = "entry_1/instrument_1/detector_1"
    # the probe moves by -translation and the default basis maps i -> -y, j -> -x, so a
    # probe window at (row, col) pixels is a sample translation (x, y) = (col, row) * dx
    trans = np.c_[pos_m[:, 1], pos_m[:, 0], np.zeros(n)]
    return {
        "cxi_version": 160,
        "entry_1/instrument_1/source_1/energy": np.float64(HC_J_M / lam),
        f"{det}/data": ds.intensities(0) if frames is None else frames,
        f"{det}/distance": np.float64(dist),
        f"{det}/x_pixel_size": np.float64(PITCH_M),
        f"{det}/y_pixel_size": np.float64(PITCH_M),
        "entry_1/sample_1/geometry_1/translation": trans,
        "link:entry_1/data_1/data": f"{det}/data",
        "link:entry_1/data_1/translation": "entry_1/sample_1/geometry_1/translation",
    }


def nxcxi_parts(ds: PtychoDataset) -> dict:
    """Return NXcxi_ptycho entries: mm and eV with units attributes, beam_1/energy."""
    lam, dist, m, pos_m = _geometry(ds)
    n = ds.n_tiles
    det = "entry_1/instrument_1/detector_1"
    trans = np.c_[pos_m[:, 1], pos_m[:, 0], np.zeros(n)] * 1e3  # mm
    return {
        "cxi_version": 160,
        "entry_1/definition": np.bytes_("NXcxi_ptycho"),
        "entry_1/title": np.bytes_("simulated"),
        "entry_1/instrument_1/source_1/energy": np.float64(3.0),  # the ring, GeV: ignored
        "attrs:entry_1/instrument_1/source_1/energy@units": "GeV",
        "entry_1/instrument_1/beam_1/energy": np.float64(HC_J_M / lam / EV_J),
        "attrs:entry_1/instrument_1/beam_1/energy@units": "eV",
        f"{det}/data": ds.intensities(0),
        f"{det}/distance": np.float64(dist * 1e3),
        f"attrs:{det}/distance@units": "mm",
        f"{det}/x_pixel_size": np.float64(PITCH_M * 1e6),
        f"attrs:{det}/x_pixel_size@units": "um",
        f"{det}/y_pixel_size": np.float64(PITCH_M * 1e6),
        f"attrs:{det}/y_pixel_size@units": "um",
        f"{det}/translation": trans,
        f"attrs:{det}/translation@units": "mm",
        "link:entry_1/data_1/data": f"{det}/data",
        "link:entry_1/data_1/translation": f"{det}/translation",
        "link:entry_1/sample_1/geometry_1/translation": f"{det}/translation",
    }


def ptylab_parts(ds: PtychoDataset, frames: np.ndarray | None = None) -> dict:
    """Return PtyLab's CPM input entries (encoder = probe positions (row, col) in metres)."""
    lam, dist, m, pos_m = _geometry(ds)
    return {
        "ptychogram": ds.intensities(0) if frames is None else frames,
        "encoder": pos_m,
        "wavelength": np.float64(lam),
        "dxd": np.float64(PITCH_M),
        "zo": np.float64(dist),
        "orientation": 0,
    }


def write_foreign(
    path: Path,
    ds: PtychoDataset,
    kind: str,
    mutate: Callable[[dict], None] | None = None,
    frames: np.ndarray | None = None,
) -> Path:
    """Write ``ds`` as ``kind`` (cxi, nxcxi, ptylab) to ``path``."""
    if kind == "cxi":
        parts = cxi_parts(ds, frames)
    elif kind == "ptylab":
        parts = ptylab_parts(ds, frames)
    else:
        parts = nxcxi_parts(ds)
    if mutate is not None:
        mutate(parts)
    _write(path, parts)
    return path
