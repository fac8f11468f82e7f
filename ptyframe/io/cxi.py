"""Write a reconstruction with CXI 1.6 conventions: ``recon.cxi`` (``output.format=cxi``).

Layout (SI units; images as the CXI format's ``image_N`` groups)::

    /cxi_version                               160
    /entry_1/image_1/data                      complex object [Ny, Nx] ([S, Ny, Nx] multislice)
    /entry_1/image_1/{data_type = "object", data_space = "real", x_pixel_size, y_pixel_size}
    /entry_1/image_2/data                      complex probe [K, M, M] (modes first)
    /entry_1/image_2/{data_type = "probe", data_space = "real", x_pixel_size, y_pixel_size}
    /entry_1/sample_1/geometry_1/translation   [n, 3] m, the sample translation (x, y, 0)
    /entry_1/data_1/translation                link to it
    /entry_1/instrument_1/source_1/{energy [J], wavelength [m]}
    /entry_1/image_1/process_1/{program, version, command, date}   the resolved config
    /entry_1/image_1/process_1/history/<name>  one value per epoch (a ptyframe addition)

Translations follow the reader's convention (``ptyframe.data.read_cxi``, the cdtools one):
with the default detector basis (i along -y, j along -x) the probe centre of window r at
(row, col) object pixels is the sample translation ``(x, y) = (col, row) * dx`` (the origin
the input file used, if it was a CXI file: the reader's whole-pixel origin shift is undone),
so reading ``recon.cxi`` back with ptyframe's CXI reader gives the same positions.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.reader import HC_J_M
from ptyframe.io.atomic import atomic_path
from ptyframe.io.results import History


def sample_translations_m(dataset: PtychoDataset, positions_px: np.ndarray) -> np.ndarray:
    """Return CXI sample translations ``[n, 3]`` (x, y, 0) in metres for top-left corners."""
    g = dataset.geometry
    half = np.array([g.window[0] // 2, g.window[1] // 2], dtype=np.float64)
    shift = np.asarray(dataset.conventions.get("origin_shift_px", [0.0, 0.0]), dtype=np.float64)
    centre_m = (np.asarray(positions_px, dtype=np.float64) + half + shift) * g.pixel_size_m
    return np.c_[centre_m[:, 1], centre_m[:, 0], np.zeros(len(centre_m))]


def write_cxi_result(
    path: str | os.PathLike,
    arrays: dict[str, np.ndarray],
    history: History,
    dataset: PtychoDataset,
    attrs: dict[str, Any],
) -> Path:
    """Write object, probe, positions (metres) and history of a run as CXI; return the path."""
    import h5py

    g = dataset.geometry
    obj = np.asarray(arrays["object"])
    obj = obj[0] if obj.ndim == 3 and obj.shape[0] == 1 else obj
    with atomic_path(path, overwrite=True) as tmp, h5py.File(tmp, "w") as f:
        f["cxi_version"] = 160
        f["number_of_entries"] = 1
        for name, data, kind in (
            ("image_1", obj, "object"),
            ("image_2", np.asarray(arrays["probe"]), "probe"),
        ):
            img = f.create_group(f"entry_1/{name}")
            img["data"] = data
            img["data_type"] = np.bytes_(kind)
            img["data_space"] = np.bytes_("real")
            img["x_pixel_size"] = float(g.pixel_size_m)
            img["y_pixel_size"] = float(g.pixel_size_m)
        trans = sample_translations_m(dataset, arrays["positions_px"])
        f["entry_1/sample_1/geometry_1/translation"] = trans
        f["entry_1/data_1/translation"] = h5py.SoftLink("/entry_1/sample_1/geometry_1/translation")
        src = f.create_group("entry_1/instrument_1/source_1")
        src["wavelength"] = float(g.wavelength_m)
        src["energy"] = float(HC_J_M / g.wavelength_m)
        proc = f.create_group("entry_1/image_1/process_1")
        proc["program"] = np.bytes_("ptyframe")
        proc["version"] = np.bytes_(str(attrs.get("versions", "")))
        proc["command"] = np.bytes_(str(attrs.get("config", "")))
        proc["date"] = np.bytes_(time.strftime("%Y-%m-%dT%H:%M:%S"))
        proc["data_conventions"] = np.bytes_(str(attrs.get("data_conventions", "{}")))
        for key, value in history.arrays().items():
            proc[f"history/{key}"] = value
    return Path(path)
