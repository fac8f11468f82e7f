"""Write one simulated case transposed and flipped as CXI; let ``data.orientation=auto`` undo it.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/readers/orientation.py [--epochs 10 30]

The case is ``quality.py``'s (particle film, 64 x 64 frames, 10 x 10 raster, 1e6 photons per
pattern). Each file's frames are stored with a ptypy orientation code applied (4 transpose,
1 flip columns); ``choose_orientation`` runs a few ePIE sweeps on the 64 central tiles for
each distinguishable orientation and prints the choice, the errors and the margin.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _lib

from _lib.reader_case import PITCH_M, simulate


def write_cxi(path: Path, frames: np.ndarray, sim) -> None:
    """Write ``frames`` with ``sim``'s geometry as CXI (default basis, sample translations)."""
    g = sim.geometry
    det = "entry_1/instrument_1/detector_1"
    with h5py.File(path, "w") as f:
        f["cxi_version"] = 160
        f["entry_1/instrument_1/source_1/wavelength"] = g.wavelength_m
        f[f"{det}/data"] = frames
        f[f"{det}/distance"] = g.pixel_size_m * frames.shape[-1] * PITCH_M / g.wavelength_m
        f[f"{det}/x_pixel_size"] = PITCH_M
        f[f"{det}/y_pixel_size"] = PITCH_M
        pos_m = g.positions_px * g.pixel_size_m
        f["entry_1/sample_1/geometry_1/translation"] = np.c_[
            pos_m[:, 1], pos_m[:, 0], np.zeros(len(pos_m))
        ]


def main() -> None:
    from ptyframe.data.orientation import choose_orientation
    from ptyframe.data.preprocess import ORIENTATIONS, orient
    from ptyframe.data.reader import read_scan
    from ptyframe.data.scanfile import DetectorOptions
    from ptyframe.plugins import default_registry

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, nargs="+", default=[10, 30])
    args = ap.parse_args()
    reg = default_registry()
    sim = simulate(0)
    frames = np.asarray(sim.patterns)[0]
    with tempfile.TemporaryDirectory() as tmp:
        for written in (4, 1):
            path = Path(tmp) / f"written_{written}.cxi"
            write_cxi(path, np.ascontiguousarray(orient(frames, written)), sim)
            scan = read_scan(path, reg)
            for epochs in args.epochs:
                t0 = time.perf_counter()
                c = choose_orientation(scan, DetectorOptions(), reg, epochs=epochs)
                print(
                    f"written {written} ({ORIENTATIONS[written]}), {epochs} sweeps: chose "
                    f"{c.code}, errors "
                    + ", ".join(f"{k}: {v:.4f}" for k, v in sorted(c.errors.items()))
                    + f", margin {c.margin:.3f}x, {time.perf_counter() - t0:.1f} s"
                )


if __name__ == "__main__":
    main()
