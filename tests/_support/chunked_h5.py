"""Small chunked pattern files of raw counts (the streamed-source tests' data, fixed seeds)."""

from __future__ import annotations

import h5py
import numpy as np

from ptyframe.data.exchange import write_metadata
from ptyframe.data.geometry import ScanGeometry

M = 16


def geometry(n: int) -> ScanGeometry:
    """Return the geometry of ``n`` ``M x M`` patterns on a 7-wide raster, 3 px apart."""
    pos = np.stack([np.arange(n) % 7 * 3.0, np.arange(n) // 7 * 3.0], axis=1)
    shape = (int(pos[:, 0].max()) + M, int(pos[:, 1].max()) + M)
    return ScanGeometry(pos, (M, M), shape, 8000.0, 2e-8)


def write_chunked(path, data, **kw):
    """Write counts ``[n, M, M]`` as ``exchange/data`` chunked by pattern, a mask at ``/bad``."""
    with h5py.File(path, "w") as f:
        d = f.create_dataset("exchange/data", data=data[None], chunks=(1, 1, M, M), **kw)
        d.attrs["quantity"] = "intensity"
        write_metadata(f, geometry(data.shape[0]))
        f["bad"] = np.eye(M, dtype=np.uint8)
    return path


def poisson_counts(n: int, seed: int = 0, dtype=np.uint16) -> np.ndarray:
    """Return ``[n, M, M]`` Poisson counts of a gamma-distributed intensity (seeded)."""
    rng = np.random.default_rng(seed)
    return rng.poisson(rng.gamma(0.6, 40.0, size=(n, M, M))).astype(dtype)
