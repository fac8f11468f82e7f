"""Order the visits of a sweep: a permutation that keeps the patterns' blocks together.

One block (the patterns held in memory) gives a plain permutation seeded by ``(seed, epoch)``;
blocks of ``block`` patterns (a streamed file) are visited in scan order, each shuffled inside,
so that one block is resident at a time.
"""

from __future__ import annotations

import numpy as np


def block_order(n: int, block: int, seed: int, epoch: int) -> np.ndarray:
    """Return the visiting order of ``n`` patterns in blocks of ``block`` (module docstring)."""
    rng = np.random.default_rng([int(seed), int(epoch)])
    block = max(1, int(block))
    if block >= n:
        return rng.permutation(n)
    parts = [s + rng.permutation(min(block, n - s)) for s in range(0, n, block)]
    return np.concatenate(parts)
