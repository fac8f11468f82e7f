"""Write a scan as CXI with cdtools-py's own writer (run in the cdtools venv, not ptyframe's).

    .venv-cdtools/bin/python benchmarks/readers/cdtools_write_cxi.py scan.npz scan.cxi [pix.npy]

``scan.npz`` holds ``patterns`` [n, M, M] (centred intensities), ``positions_px`` [n, 2]
(row, col top-left corners in object pixels), ``pixel_size_m``, ``wavelength_m`` and
``pitch_m``. The detector distance is chosen so that ``wavelength z / (M pitch)`` is the object
pixel. cdtools describes a scan by its *probe* translations in metres and the detector by a
basis; with its default basis (i along -y, j along -x) a window at (row, col) pixels is the
probe translation ``(-col dx, -row dx, 0)`` (cdtools' ``interactions.translations_to_pixel``);
``Ptycho2DDataset.to_cxi`` negates it into the CXI sample translation.
"""

from __future__ import annotations

import sys

import numpy as np


def main(src: str, dst: str) -> None:
    import torch
    from cdtools.datasets import Ptycho2DDataset

    d = np.load(src)
    patterns = np.asarray(d["patterns"], dtype=np.float32)
    m = patterns.shape[-1]
    dx, lam, pitch = float(d["pixel_size_m"]), float(d["wavelength_m"]), float(d["pitch_m"])
    distance = dx * m * pitch / lam
    basis = np.array([[0.0, -pitch, 0.0], [-pitch, 0.0, 0.0]]).T  # cdtools' default
    pos = np.asarray(d["positions_px"], dtype=np.float64)
    probe_translations = np.c_[-pos[:, 1] * dx, -pos[:, 0] * dx, np.zeros(len(pos))]
    ds = Ptycho2DDataset(
        torch.as_tensor(probe_translations),
        torch.as_tensor(patterns),
        wavelength=lam,
        detector_geometry={"distance": distance, "basis": torch.as_tensor(basis)},
    )
    ds.to_cxi(dst)
    print(f"cdtools wrote {dst}: {len(pos)} patterns of {m}x{m}, distance {distance:.4g} m")


def cdtools_pixels(cxi: str) -> np.ndarray:
    """Return the (i, j) probe positions in object pixels as cdtools reads ``cxi`` itself."""
    from cdtools.datasets import Ptycho2DDataset
    from cdtools.tools import initializers, interactions

    ds = Ptycho2DDataset.from_cxi(cxi)
    geo = ds.detector_geometry
    basis = initializers.exit_wave_geometry(
        geo["basis"], ds.patterns.shape[-2:], ds.wavelength, geo["distance"]
    )
    return interactions.translations_to_pixel(basis, ds.translations).numpy()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    if len(sys.argv) > 3:
        np.save(sys.argv[3], cdtools_pixels(sys.argv[2]))
