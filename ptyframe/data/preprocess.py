"""Prepare raw detector frames: orientation, mask, dark, saturation, crop and binning.

Orientation codes (the ptypy convention, which PtyLab also uses; applied to the detector
frames, last two axes, never to the positions)::

    0 as stored          4 transpose
    1 flip columns       5 transpose, then flip columns
    2 flip rows          6 transpose, then flip rows
    3 flip both          7 transpose, then flip both

Transforming the positions instead gives the same data up to a mirrored or transposed
object, so these 8 cover both. Flipping both frame axes (``0 <-> 3``, ``1 <-> 2``,
``4 <-> 7``, ``5 <-> 6``) is the twin-image symmetry: ``|F[conj psi](q)| = |F[psi](-q)|``,
so such a pair explains the data equally well (object and probe conjugated); the data
alone cannot tell them apart.

Per frame, in this order: orient; pixels that are masked, negative (unmeasured) or at or
above ``saturation`` become unmeasured; subtract the dark frame (clipping at 0); crop a
``crop x crop`` window whose centre ``crop // 2`` is the pattern centre; sum ``bin x bin``
blocks (a block with an unmeasured pixel is unmeasured). Unmeasured pixels come out as -1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ORIENTATIONS = {
    0: "as stored",
    1: "flip columns",
    2: "flip rows",
    3: "flip rows and columns",
    4: "transpose",
    5: "transpose, then flip columns",
    6: "transpose, then flip rows",
    7: "transpose, then flip rows and columns",
}
#: One orientation of each twin pair (see the module docstring): what ``auto`` tries.
DISTINCT_ORIENTATIONS = (0, 1, 4, 5)


def orient(frames: np.ndarray, code: int) -> np.ndarray:
    """Apply orientation ``code`` (0-7) to the last two axes of ``frames``."""
    if code >= 4:
        frames = np.swapaxes(frames, -1, -2)
    if code % 4 in (1, 3):
        frames = np.flip(frames, -1)
    if code % 4 in (2, 3):
        frames = np.flip(frames, -2)
    return frames


def compose(first: int, then: int) -> int:
    """Return the code of applying ``first`` and then ``then`` (found by trying)."""
    probe = np.arange(6).reshape(2, 3)
    target = orient(orient(probe, first), then)
    for code in ORIENTATIONS:
        out = orient(probe, code)
        if out.shape == target.shape and np.array_equal(out, target):
            return code
    raise AssertionError("orientations form a group")  # pragma: no cover


@dataclass
class Preprocess:
    """Turn raw frames ``[n, H, W]`` into the frames ptyframe uses ``[n, M, M]`` (float32).

    ``valid`` and ``dark`` are given in the oriented frame; ``window`` is the crop
    ``(y0, x0, size)`` in oriented raw pixels, or None for the whole frame.
    """

    orientation: int = 0
    valid: np.ndarray | None = None
    dark: np.ndarray | None = None
    saturation: float | None = None
    window: tuple[int, int, int] | None = None
    bin: int = 1

    def __call__(self, block: np.ndarray) -> np.ndarray:
        x = orient(np.asarray(block, dtype=np.float32), self.orientation)
        bad = x < 0
        if self.valid is not None:
            bad = bad | ~self.valid
        if self.saturation is not None:
            bad = bad | (x >= self.saturation)
        if self.dark is not None:
            x = np.maximum(x - self.dark, 0.0)
        if self.window is not None:
            y0, x0, c = self.window
            x = x[..., y0 : y0 + c, x0 : x0 + c]
            bad = bad[..., y0 : y0 + c, x0 : x0 + c]
        if self.bin > 1:
            b = self.bin
            n, h, w = x.shape
            x = x.reshape(n, h // b, b, w // b, b).sum(axis=(2, 4))
            bad = np.asarray(bad.reshape(n, h // b, b, w // b, b).any(axis=(2, 4)))
        out = np.array(x, dtype=np.float32, copy=True)
        out[bad] = -1.0
        return out

    @property
    def identity(self) -> bool:
        return (
            self.orientation == 0
            and self.valid is None
            and self.dark is None
            and self.saturation is None
            and self.window is None
            and self.bin == 1
        )

    def describe(self) -> dict[str, Any]:
        """Return what this pipeline does, for the record in ``recon.h5``."""
        return {
            "orientation": f"{self.orientation} ({ORIENTATIONS[self.orientation]}) on frames",
            "masked_pixels": 0 if self.valid is None else int((~self.valid).sum()),
            "dark_subtracted": self.dark is not None,
            "saturation": self.saturation,
            "crop_window_yx_size": None if self.window is None else list(self.window),
            "bin": self.bin,
        }


def pattern_centre(mean_pattern: np.ndarray) -> tuple[int, int]:
    """Return the (row, col) centroid of the measured part of a mean pattern, rounded."""
    m = np.where(mean_pattern > 0, mean_pattern, 0.0).astype(np.float64)
    total = m.sum()
    if total <= 0:
        return (m.shape[0] // 2, m.shape[1] // 2)
    yy, xx = np.indices(m.shape)
    return (int(round(float((m * yy).sum() / total))), int(round(float((m * xx).sum() / total))))
