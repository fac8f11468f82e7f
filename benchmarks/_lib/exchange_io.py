"""Read a data-exchange file and write a peer's result; numpy + h5py only (runs in any venv).

The runners ``run_ptylab.py`` and ``run_ptychi.py`` execute in the peers' own venvs, which do
not have ptyframe, so this module repeats the few lines of the layout they need (written by
``ptyframe.data.exchange.write_dataset``)::

    /exchange/data            [1, n, M, M] intensities, zero frequency at the centre
    /metadata/probe_pos_px    [n, 2] (y, x) top-left corners in object pixels (sub-pixel
                              allowed: pty-chi shifts the probe, PtyLab rounds to pixels)
    /metadata/energy_ev, /metadata/psize_cm, /metadata/object_shape_px (optional)
    /truth/probe              [K, M, M] complex (simulations; unitary-FFT convention)
    /truth/positions_px       [n, 2] where the beam hit (simulated position errors)

A result (``.npz``) holds ``object`` [Ny, Nx] complex on ptyframe's object frame (cropped),
``probe`` [M, M] complex in the file's (unitary-FFT) scale where the peer allows it,
``seconds_per_sweep`` [sweeps] float64 (wall time of each sweep), and ``info`` (a JSON
string: tool, engine, settings, the object frame's offset inside the peer's array); with
position correction also ``positions_px`` [n, 2] (y, x) top-left corners on ptyframe's frame
(the peer's refined positions), with probe variation ``probe_weights`` [n, K].
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

HC_EV_M = 1.23984198e-6  # h c in eV m


@dataclass
class ExchangeCase:
    """The parts of a data-exchange file a peer needs."""

    patterns: np.ndarray  # [n, M, M] float32, centred intensities
    positions_px: np.ndarray  # [n, 2] float64 (y, x) top-left corners
    energy_ev: float
    pixel_size_m: float
    object_shape: tuple[int, int]
    truth_probe: np.ndarray | None  # [M, M] complex (first mode) or None
    truth_positions: np.ndarray | None = None  # [n, 2] where the beam hit (simulations)

    @property
    def wavelength_m(self) -> float:
        return HC_EV_M / self.energy_ev

    @property
    def window_px(self) -> int:
        return int(self.patterns.shape[-1])


def read_case(path: str | os.PathLike) -> ExchangeCase:
    """Read a single-angle data-exchange file (positions must be whole pixels)."""
    import h5py

    with h5py.File(path, "r") as f:
        data = np.asarray(f["exchange/data"], dtype=np.float32)
        quantity = f["exchange/data"].attrs.get("quantity", "intensity")
        pos = np.asarray(f["metadata/probe_pos_px"], dtype=np.float64)
        energy = float(f["metadata/energy_ev"][()])
        psize = float(f["metadata/psize_cm"][()]) * 1e-2
        if "metadata/object_shape_px" in f:
            shape = tuple(int(v) for v in f["metadata/object_shape_px"][()])
        else:
            m = data.shape[-1]
            shape = (int(math.ceil(pos[:, 0].max())) + m, int(math.ceil(pos[:, 1].max())) + m)
        probe = np.asarray(f["truth/probe"])[0] if "truth/probe" in f else None
        true_pos = np.asarray(f["truth/positions_px"]) if "truth/positions_px" in f else None
    if isinstance(quantity, bytes):
        quantity = quantity.decode()
    if data.ndim != 4 or data.shape[0] != 1:
        raise SystemExit(f"{path}: /exchange/data must be [1, n, M, M], got {data.shape}")
    if quantity != "intensity":
        raise SystemExit(f"{path}: /exchange/data holds {quantity!r}; the peers need intensities")
    return ExchangeCase(np.clip(data[0], 0, None), pos, energy, psize, shape, probe, true_pos)


def write_result(
    path: str | os.PathLike,
    obj: np.ndarray,
    probe: np.ndarray,
    seconds_per_sweep: list[float],
    info: dict[str, Any],
    **extra: np.ndarray,
) -> None:
    """Write a peer's result ``.npz`` (see the module docstring); ``extra``: further arrays."""
    np.savez(
        path,
        object=np.asarray(obj, dtype=np.complex64),
        probe=np.asarray(probe, dtype=np.complex64),
        seconds_per_sweep=np.asarray(seconds_per_sweep, dtype=np.float64),
        info=json.dumps(info),
        **{k: np.asarray(v) for k, v in extra.items()},
    )


def set_threads(threads: int) -> None:
    """Pin BLAS/OpenMP threads before numpy/torch start their pools."""
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[key] = str(int(threads))
