"""Simulate a scan larger than memory: patterns computed and written chunk by chunk.

``write_simulation(simulator, phantom, probe, scan, path)`` makes the same data set as
``Simulator.run`` followed by ``SimulatedData.write`` (``ptyframe.simulation.simulate``), but
never holds more than one chunk of patterns:

1. the scene (probe modes, positions, object; steps 1-3 of ``simulate``);
2. a first pass over the positions in chunks computes each noiseless pattern's sum and its
   zero-frequency pixel, which fix the dose scale ``s`` (step 5);
3. a second pass computes the noiseless patterns again chunk by chunk
   (``Simulator.noiseless``, the reconstruction's own far-field model), scales them by ``s``,
   draws the Poisson counts from the same noise stream in the same order (step 6) and writes
   them into ``/exchange/data`` in the stored ``dtype``.

Chunks are whole multiples of ``Simulator.noiseless``'s batches and the Poisson draws consume
the noise stream element by element in scan order, so the file holds the patterns
``Simulator.run`` makes, bit for bit, in float32 (``tests/readers/test_patterns.py`` checks it).
Integer dtypes (``uint16``, ``uint32``: what a photon-counting detector stores) hold the
Poisson counts exactly; a count beyond the dtype's range is an error naming the dtype to use.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ptyframe.data.exchange import Truth, write_metadata
from ptyframe.data.geometry import ScanGeometry
from ptyframe.errors import ConfigError
from ptyframe.io.atomic import atomic_path
from ptyframe.simulation.simulate import Simulator

#: Stored dtypes ``write_simulation`` writes.
DTYPES = ("float32", "uint16", "uint32")


def chunk_patterns(simulator: Simulator, k: int, m: int, target: int = 1024) -> int:
    """Return a chunk of about ``target`` patterns: a whole multiple of the model's batches
    (``Simulator.noiseless``), or ``target`` when that is smaller than one batch."""
    batch = max(1, (1 << 22) // (k * m * m))
    return batch * (target // batch) if target >= batch else max(1, target)


def write_simulation(
    simulator: Simulator,
    phantom: Any,
    probe: Any,
    scan: Any,
    path: str | os.PathLike,
    dtype: str = "float32",
    overwrite: bool = False,
    chunk_target: int = 1024,
) -> ScanGeometry:
    """Write the data set ``simulator.run(phantom, probe, scan)`` makes, chunk by chunk.

    Returns the scan's geometry. ``dtype`` is the stored dtype of ``/exchange/data``
    (``DTYPES``); integers need ``noise="poisson"`` (counts).
    """
    import h5py

    if dtype not in DTYPES:
        raise ConfigError(f"stored dtype {dtype!r}; choose one of {DTYPES}")
    c = simulator.config
    if dtype != "float32" and c.noise != "poisson":
        raise ConfigError(f"dtype={dtype} stores counts: it needs noise=poisson")
    if c.nuisances.varies_probe:
        raise ConfigError(
            "write_large does not simulate a drifting probe; use Simulator.run for "
            "simulation.nuisances.probe_*"
        )
    sc = simulator.scene(phantom, probe, scan)
    m, k, t = int(c.window_px), sc.modes.shape[0], sc.positions_px.shape[0]
    step = chunk_patterns(simulator, k, m, chunk_target)
    totals, origins = np.empty(t), np.empty(t)
    for i in range(0, t, step):
        clean, _ = simulator.noiseless(sc.object, sc.modes, sc.positions_px[i : i + step])
        totals[i : i + step] = clean.sum(axis=(1, 2))
        origins[i : i + step] = clean[:, m // 2, m // 2]
    scale, mode = simulator.dose_scale(totals, origins)
    geometry = ScanGeometry(
        sc.plan.recorded_positions_px, (m, m), sc.shape, float(c.energy_ev), c.pixel_size_m
    )
    top = np.iinfo(dtype).max if dtype != "float32" else None
    illum = np.zeros(sc.shape)
    with atomic_path(path, overwrite=overwrite) as tmp, h5py.File(tmp, "w") as f:
        data = f.create_dataset("exchange/data", (1, t, m, m), dtype=dtype, chunks=(1, 1, m, m))
        data.attrs["quantity"] = "intensity"
        for i in range(0, t, step):
            clean, lit = simulator.noiseless(sc.object, sc.modes, sc.positions_px[i : i + step])
            illum += lit
            clean *= scale
            clean *= sc.plan.flux[i : i + step, None, None]  # all ones without flux fluctuation
            if c.noise == "poisson":
                counts = sc.rng["noise"].poisson(clean)
                if top is not None and int(counts.max()) > top:
                    raise ConfigError(
                        f"a pattern holds {int(counts.max())} counts in one pixel, beyond "
                        f"{dtype}'s {top}; store uint32 or float32, or lower the dose"
                    )
                block = counts.astype(dtype)
            else:
                block = clean.astype(np.float32)
            data[0, i : i + len(block)] = block
        truth = Truth(
            object=sc.object[None].astype(np.complex64),
            probe=(sc.modes * np.sqrt(scale)).astype(np.complex64),
            illumination=(illum * scale).astype(np.float32),
            extras=sc.plan.truth_extras(),
        )
        attrs = simulator._attrs(
            phantom,
            probe,
            scan,
            sc.diameter_px,
            mode,
            float(totals.mean()) * scale,
            float(origins.mean()) * scale,
        )
        write_metadata(f, geometry, 1, truth, {**attrs, "stored_dtype": dtype})
    return geometry
