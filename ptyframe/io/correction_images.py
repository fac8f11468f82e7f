"""Draw the position corrections of a run: arrows over the scan (``position_corrections.png``).

Each arrow starts at a recorded position (top-left corner of its window, object pixels,
``y`` down as in the object images) and points along ``p_refined - p_recorded`` after the
scan's mean move is removed (a global offset is invisible in the data). The arrows are drawn
``gain`` times their length so that the longest is about one scan step (the median distance
to the nearest neighbour); the title gives the gain and the RMS of the moves in pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptyframe.io.images import pyplot, save_figure

#: The file a run writes (and ``ptyframe report`` shows).
FILE = "position_corrections.png"


def arrow_gain(recorded_px: np.ndarray, moves_px: np.ndarray) -> float:
    """Return the drawing gain: the longest arrow about one scan step long (at least 1)."""
    longest = float(np.sqrt((moves_px**2).sum(axis=1)).max()) if len(moves_px) else 0.0
    if len(recorded_px) < 2 or longest <= 0.0:
        return 1.0
    d2 = ((recorded_px[:, None, :] - recorded_px[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    step = float(np.median(np.sqrt(d2.min(axis=1))))
    gain = step / longest
    return 1.0 if gain <= 1.0 else float(np.round(gain, 1 if gain < 10 else 0))


def position_corrections_image(
    recorded_px: np.ndarray, refined_px: np.ndarray, path: Path, title: str = ""
) -> Path:
    """Write the arrows of ``refined_px - recorded_px`` (``[N, 2]`` (y, x) each) to ``path``."""
    rec = np.asarray(recorded_px, dtype=np.float64)
    moves = np.asarray(refined_px, dtype=np.float64) - rec
    moves = moves - moves.mean(axis=0)
    rms = float(np.sqrt((moves**2).sum(axis=1).mean())) if len(moves) else 0.0
    gain = arrow_gain(rec, moves)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 6.0))
    ax.plot(rec[:, 1], rec[:, 0], ".", color="0.6", markersize=3)
    ax.quiver(
        rec[:, 1],
        rec[:, 0],
        moves[:, 1] * gain,
        moves[:, 0] * gain,
        angles="xy",
        scale_units="xy",
        scale=1.0,
        color="tab:red",
        width=0.004,
    )
    ends = np.concatenate([rec, rec + moves * gain]) if len(rec) else np.zeros((1, 2))
    pad = 0.05 * float(np.ptp(ends, axis=0).max() or 1.0)
    ax.set_xlim(ends[:, 1].min() - pad, ends[:, 1].max() + pad)
    ax.set_ylim(ends[:, 0].max() + pad, ends[:, 0].min() - pad)  # y down
    ax.set_aspect("equal")
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    head = f"{title}: " if title else ""
    ax.set_title(f"{head}position corrections, RMS {rms:.2f} px (arrows x{gain:g})")
    return save_figure(fig, path)
