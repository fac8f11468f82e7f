"""Find the detector orientation of a file from its data: ``data.orientation=auto``.

For each orientation that the data can tell apart (``DISTINCT_ORIENTATIONS``: one of each
twin pair, see ``ptyframe.data.preprocess``) run a few sweeps of ePIE (Maiden & Rodenburg,
Ultramicroscopy 2009) on a compact subset of the scan (the tiles nearest the scan's centre,
so they overlap) and keep the orientation with the lowest final data error
``sum |sqrt(I) - |F psi|| / sum sqrt(I)``. A wrong transpose or a single flip makes the
patterns inconsistent with the overlap of neighbouring positions, so its error stays high.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, replace

import numpy as np

from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.preprocess import DISTINCT_ORIENTATIONS, ORIENTATIONS, compose
from ptyframe.data.reader import ScanFile
from ptyframe.data.scanfile import DetectorOptions, build_dataset
from ptyframe.registry import Registry

log = logging.getLogger("ptyframe")


@dataclass(frozen=True)
class OrientationChoice:
    """The orientation chosen and the final data error of every candidate."""

    code: int
    errors: dict[int, float]

    @property
    def margin(self) -> float:
        """Return (second-lowest error) / (lowest error)."""
        ranked = sorted(self.errors.values())
        return ranked[1] / ranked[0] if len(ranked) > 1 and ranked[0] > 0 else float("inf")

    def summary(self) -> str:
        ranked = sorted(self.errors.items(), key=lambda kv: kv[1])
        runner_up = ranked[1] if len(ranked) > 1 else None
        twin = compose(self.code, 3)
        text = (
            f"data.orientation=auto chose {self.code} ({ORIENTATIONS[self.code]}): data error "
            f"{self.errors[self.code]:.4g}"
        )
        if runner_up is not None:
            text += (
                f", next best {runner_up[0]} ({ORIENTATIONS[runner_up[0]]}) "
                f"{runner_up[1]:.4g}, margin {self.margin:.2f}x"
            )
        return text + f"; its twin {twin} fits equally (conjugate object)"


def central_tiles(positions_px: np.ndarray, n: int) -> np.ndarray:
    """Return the indices of the ``n`` positions nearest the scan's centre (sorted)."""
    pos = np.asarray(positions_px, dtype=np.float64)
    centre = np.median(pos, axis=0)
    order = np.argsort(np.linalg.norm(pos - centre, axis=1), kind="stable")
    return np.sort(order[: min(n, len(pos))])


def choose_orientation(
    scan: ScanFile,
    opts: DetectorOptions,
    registry: Registry,
    epochs: int = 8,
    tiles: int = 64,
    seed: int = 0,
) -> OrientationChoice:
    """Try each distinct orientation for ``epochs`` ePIE sweeps on ``tiles`` tiles."""
    from ptyframe.runner import reconstruct

    errors: dict[int, float] = {}
    for code in DISTINCT_ORIENTATIONS:
        ds = build_dataset(
            scan, replace(opts, orientation=code, check_values=False, check_field=False)
        )
        idx = central_tiles(ds.geometry.positions_px, tiles)
        subset = PtychoDataset(
            ds.geometry.select(idx), patterns=ds.intensities(0, idx)[None], truth=None
        )
        result = reconstruct(subset, "epie", registry=registry, epochs=epochs, seed=seed)
        errors[code] = float(result.history.last("data_error"))
    best = min(errors, key=lambda k: errors[k])
    choice = OrientationChoice(best, errors)
    message = choice.summary()
    if log.isEnabledFor(logging.INFO) and log.hasHandlers():
        log.info("%s", message)
    else:  # no logging set up (the Python API): say it anyway
        print(message, file=sys.stderr)
    return choice
