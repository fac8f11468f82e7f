"""Write data-exchange files with plain h5py, as a tool that does not use ptyframe would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from synth import make_dataset


def write_plain(
    path: Path,
    mutate: Callable[[dict], None] | None = None,
    m: int = 16,
    n: int = 4,
    step: float = 4.0,
) -> dict:
    """Write a small valid file (noiseless, jittered raster); ``mutate`` edits the parts first.

    ``parts`` maps HDF5 paths to arrays (``None`` drops the entry) plus ``attrs:<path>``.
    """
    ds = make_dataset(m=m, n=n, step=step, jitter=0.7, seed=3)
    parts: dict = {
        "exchange/data": ds.intensities(0)[None],
        "metadata/probe_pos_px": ds.geometry.positions_px.copy(),
        "metadata/energy_ev": np.float64(8000.0),
        "metadata/psize_cm": np.float64(2e-6),
    }
    truth = {"object": ds.truth.object, "probe": ds.truth.probe}
    if mutate is not None:
        mutate(parts)
    with h5py.File(path, "w") as f:
        for key, value in parts.items():
            if key.startswith("attrs:") or value is None:
                continue
            f[key] = value
        for key, value in parts.items():
            if key.startswith("attrs:") and value is not None:
                obj_path, attr = key[6:].rsplit("@", 1)
                f[obj_path].attrs[attr] = value
    return truth
