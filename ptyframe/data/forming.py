"""Form FFT-order float amplitudes from stored counts rows, through the compiled kernel.

The one place where rows of counts in their stored dtype become what the engines compare their
model with (``sqrt`` of the counts, masked and saturated pixels marked), bit for bit
``ptyframe.data.counts.amplitudes``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ptyframe.data.counts import PixelRule


def form(
    rule: PixelRule,
    rows: np.ndarray,
    local: np.ndarray,
    amp: np.ndarray,
    valid: np.ndarray,
    bad: np.ndarray,
) -> None:
    """Write the FFT-order amplitudes of stored rows ``rows[local]`` into ``amp[:k]``.

    ``rows`` ``[n, M, N]`` centred, any stored dtype; ``amp`` ``[>= k, M, N]`` real,
    ``valid`` bool, ``bad`` ``[>= k]`` the unmeasured pixels of each (the compiled
    ``amplitude_kernels.amplitude_take``, bit for bit ``counts.amplitudes``).
    """
    from ptyframe.data.amplitude_kernels import kernels, no_mask

    local = np.asarray(local, dtype=np.int64)
    if rows.dtype == np.float16:  # numba reads no float16: widen these rows (exact)
        rows, local = rows[local].astype(np.float32), np.arange(len(local))
    use_mask = rule.mask is not None
    mask = rule.mask if use_mask else no_mask(rows.shape[-2:])
    kernels().amplitude_take(
        rows, local, mask, use_mask, rule.saturation32, rule.squared, amp, valid, bad
    )
