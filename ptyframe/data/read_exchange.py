"""Read the data-exchange layout (Adorym's; see ``ptyframe.data.exchange``) as a reader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ptyframe.data.reader import ScanFile
from ptyframe.data.validate import inspect_open


@dataclass
class ExchangeReaderConfig:
    """The data-exchange HDF5 layout: ``/exchange/data``, ``/metadata/probe_pos_px``, ..."""

    name: str = "exchange"


class ExchangeReader:
    """Positions are stored in object pixels and the object pixel size is given."""

    name = "exchange"
    priority = 0

    def __init__(self, config: ExchangeReaderConfig | None = None) -> None:
        self.config = config

    def sniff(self, f: Any) -> bool:
        return "exchange" in f or "metadata" in f

    def read(self, f: Any, path: str) -> ScanFile:
        s = inspect_open(f, path, scan=False)
        g = s.geometry
        h, w = g.window
        centres = (g.positions_px + np.array([h // 2, w // 2])) * g.pixel_size_m
        return ScanFile(
            path=path,
            reader=self.name,
            data_key="exchange/data",
            layout="angles_tiles",
            shape=s.shape,
            quantity=s.quantity,
            wavelength_m=g.wavelength_m,
            extent_m=(g.pixel_size_m * h, g.pixel_size_m * w),
            centres_m=centres,
            positions_px=g.positions_px,
            object_shape=g.object_shape,
            free_prop_m=g.free_prop_m,
            theta_rad=g.theta_rad,
            has_truth=s.has_truth,
            arbitrary_origin=False,
            detector_pitch_m=(g.pixel_size_m, g.pixel_size_m),
            detector_distance_m=g.free_prop_m[0] if g.free_prop_m else None,
            object_plane=True,
            conventions={
                "positions": "/metadata/probe_pos_px, (y, x) top-left corners in object pixels",
                "pixel_size": "/metadata/psize_cm * 1e-2 m",
                "energy": "/metadata/energy_ev",
            },
        )
