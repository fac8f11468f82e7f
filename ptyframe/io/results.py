"""Write and read ``recon.h5``: the unknowns, the per-epoch history and how the run was made.

Layout::

    /object        complex [n_slices, Ny, Nx] in the data file's object frame
    /probe         complex [n_modes, M, M]
    /positions_px  float64 [n_tiles, 2] (y, x) top-left corners (refined if the engine did)
    /extras/*      further refined quantities (geometry), if any
    /history/*     one float64 array per quantity, one value per epoch (NaN where not computed)
    attrs: config (resolved YAML), versions (JSON), seed, ptyframe_version, status, epochs_done
           noise_floor, noise_floor_ratio, stalled (final data error against the Poisson
           floor of the counts, ``ptyframe.metrics.noise_floor``; finished runs only)

Written atomically (temp file + rename): a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ptyframe.errors import DataValidationError
from ptyframe.io.atomic import atomic_path

#: The result file every run writes into its directory.
RESULT_FILE = "recon.h5"


def package_versions() -> dict[str, str]:
    """Return the versions of ptyframe and the libraries a result depends on."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("ptyframe", "torch", "numpy", "scipy", "h5py", "hydra-core", "pluggy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


@dataclass
class History:
    """Per-epoch values: ``columns[name][i]`` belongs to epoch ``epochs[i]``."""

    epochs: list[int] = field(default_factory=list)
    columns: dict[str, list[float]] = field(default_factory=dict)

    def append(self, epoch: int, values: dict[str, float]) -> None:
        """Add one epoch; a name missing now or before is padded with NaN."""
        n = len(self.epochs)
        self.epochs.append(int(epoch))
        for key, val in values.items():
            self.columns.setdefault(key, [float("nan")] * n).append(float(val))
        for col in self.columns.values():
            if len(col) < n + 1:
                col.append(float("nan"))

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"epoch": np.asarray(self.epochs, dtype=np.int64)}
        out.update({k: np.asarray(v, dtype=np.float64) for k, v in self.columns.items()})
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> History:
        h = cls()
        h.epochs = [int(e) for e in arrays.get("epoch", [])]
        h.columns = {k: [float(x) for x in v] for k, v in arrays.items() if k != "epoch"}
        return h

    def last(self, name: str) -> float:
        col = self.columns.get(name, [])
        vals = [v for v in col if v == v]
        return vals[-1] if vals else float("nan")


def write_result(
    path: str | os.PathLike,
    arrays: dict[str, np.ndarray],
    history: History,
    attrs: dict[str, Any],
    overwrite: bool = False,
) -> None:
    """Write ``recon.h5`` (arrays as from ``ReconstructionState.numpy()``) atomically."""
    import h5py

    with atomic_path(path, overwrite=overwrite) as tmp, h5py.File(tmp, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
        for key, value in history.arrays().items():
            f.create_dataset(f"history/{key}", data=value)
        for key, value in attrs.items():
            f.attrs[key] = value if not isinstance(value, dict) else json.dumps(value)


@dataclass
class StoredResult:
    """What ``read_result`` returns."""

    object: np.ndarray
    probe: np.ndarray
    positions_px: np.ndarray
    history: History
    attrs: dict[str, Any]


def read_result(path: str | os.PathLike) -> StoredResult:
    """Read a ``recon.h5``; raise ``DataValidationError`` naming what is missing."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        raise DataValidationError(f"{path}: cannot open result file ({exc})") from exc
    with f:
        for key in ("object", "probe", "positions_px"):
            if key not in f:
                raise DataValidationError(f"{path}: no /{key}; is this a ptyframe recon.h5?")
        hist = {k: np.asarray(v[()]) for k, v in f["history"].items()} if "history" in f else {}
        return StoredResult(
            np.asarray(f["object"][()]),
            np.asarray(f["probe"][()]),
            np.asarray(f["positions_px"][()]),
            History.from_arrays(hist),
            dict(f.attrs),
        )
