"""Read PtyLab's input file (conventional ptychography, ``operationMode="CPM"``).

Layout (root datasets, SI units; PtyLab 0.3.7 ``ExperimentalData`` / ``io.readHdf5``)::

    ptychogram   [R, Nd, Nd]  intensities, zero frequency at the centre
    encoder      [R, 2]       (row, col) probe positions in metres (PtyLab accepts [2, R])
    wavelength   m
    dxd          detector pitch, m
    zo           sample-detector distance, m
    orientation  optional, ptypy code 0-7 applied to the frames on load (0 = as stored)

PtyLab's object pixel is ``dxo = wavelength * zo / (Nd * dxd)`` and it places window r at
``round(encoder_r / dxo)`` plus a constant; ptyframe keeps the sub-pixel part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ptyframe.data.read_cxi import DISTANCE_RANGE_M, PITCH_RANGE_M, WAVELENGTH_RANGE_M, _check_span
from ptyframe.data.reader import ScanFile, fail, scalar
from ptyframe.data.validate import check_frames

REQUIRED = ("ptychogram", "encoder", "wavelength", "dxd", "zo")


@dataclass
class PtylabReaderConfig:
    """PtyLab's CPM input file: ``ptychogram``, ``encoder`` [m], ``wavelength``, ``dxd``, ``zo``."""

    name: str = "ptylab"


class PtylabReader:
    """Probe positions (not sample translations) in metres, (row, col)."""

    name = "ptylab"
    priority = 10

    def __init__(self, config: PtylabReaderConfig | None = None) -> None:
        self.config = config

    def sniff(self, f: Any) -> bool:
        return "ptychogram" in f and "encoder" in f

    def read(self, f: Any, path: str) -> ScanFile:
        for key in REQUIRED:
            if key not in f:
                raise fail(
                    path,
                    f"missing /{key} (PtyLab needs {', '.join(REQUIRED)})",
                    f"write it with h5py: f[{key!r}] = <value in SI units>",
                )
        ds = f["ptychogram"]
        if ds.ndim != 3:
            raise fail(
                path,
                f"/ptychogram must be [n_frames, Nd, Nd], got shape {ds.shape}",
                "store one frame per scan point along the first axis",
            )
        check_frames(ds, path, "/ptychogram", square=False)
        n, h, w = (int(s) for s in ds.shape)
        if n == 0:
            raise fail(path, "/ptychogram is empty", "the scan has no patterns")
        lam = scalar(f, "wavelength", path, "m", *WAVELENGTH_RANGE_M, "PtyLab stores metres")
        dxd = scalar(f, "dxd", path, "m", *PITCH_RANGE_M, "PtyLab stores the pitch in metres")
        zo = scalar(f, "zo", path, "m", *DISTANCE_RANGE_M, "PtyLab stores metres")
        enc = np.asarray(f["encoder"][()])
        if not np.issubdtype(enc.dtype, np.number) or np.iscomplexobj(enc):
            raise fail(path, f"/encoder has dtype {enc.dtype}", "store real numbers in metres")
        enc = enc.astype(np.float64)
        if enc.ndim == 2 and enc.shape[0] == 2 and enc.shape[1] != 2:
            enc = enc.T
        if enc.ndim != 2 or enc.shape[1] != 2:
            raise fail(
                path,
                f"/encoder must be [n_frames, 2] (row, col), got shape {enc.shape}",
                "store one (row, col) position per frame, in metres",
            )
        if enc.shape[0] != n:
            raise fail(
                path,
                f"/encoder has {enc.shape[0]} rows but /ptychogram has {n} frames",
                "store one position per frame",
            )
        if not np.all(np.isfinite(enc)):
            raise fail(path, "/encoder holds NaN or Inf", "fix the positions")
        orientation = 0
        if "orientation" in f:
            orientation = int(np.asarray(f["orientation"][()]).ravel()[0])
            if not 0 <= orientation <= 7:
                raise fail(
                    path,
                    f"/orientation = {orientation} is not a ptypy orientation code",
                    "store 0-7 (0 = as stored) or remove it",
                )
        step = np.array([lam * zo / (h * dxd), lam * zo / (w * dxd)])
        _check_span(path, enc / step, (h, w), step, "/encoder", dxd)
        return ScanFile(
            path=path,
            reader=self.name,
            data_key="ptychogram",
            layout="tiles",
            shape=(1, n, h, w),
            quantity="intensity",
            wavelength_m=lam,
            extent_m=(lam * zo / dxd, lam * zo / dxd),
            centres_m=enc,
            file_orientation=orientation,
            detector_pitch_m=(dxd, dxd),
            detector_distance_m=zo,
            conventions={
                "data": "/ptychogram [tiles]",
                "wavelength": "/wavelength [m]",
                "distance": "/zo [m]",
                "detector_pitch": "/dxd [m]",
                "positions": "/encoder [m] (row, col) probe positions, origin shifted by "
                "whole pixels",
                "file_orientation": f"/orientation = {orientation} (ptypy code) applied to frames",
                "object_pixel": "dx = wavelength * zo / (Nd * dxd)",
            },
        )
