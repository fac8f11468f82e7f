"""Catch a far-field scan read as near field, or the reverse, from the frames themselves.

Two statistics of the frames, each tested on simulated scans of both kinds at several doses
(``tests/test_fieldcheck.py``):

Lit fraction ``L``
    The mean of up to ``N_FRAMES`` frames (spread over the scan), blurred by a 5 x 5 box, and
    the fraction of its pixels above a tenth of its 99th percentile. A far-field pattern puts
    its photons in a bright centre (the bright-field disc, the focus's angular spread) with a
    dark field falling by decades around it: ``L`` is the disc's share of the detector, small
    unless the optic's cone overfills it (a disc touching the edges of a square detector is
    ``pi / 4``). A hologram is the flat field of the illumination, which a near-field scan
    spreads over the detector: ``L`` near 1. Conclusive only when the blurred mean holds
    enough counts at the reference level that a tenth of it is not noise
    (``MIN_REFERENCE_COUNTS`` over the averaged frames and the 25 pixels of the box).

Hologram shift ``s`` per scan step ``d``
    A hologram is a magnified image of the sample: between neighbouring scan points it moves
    by ``d / dx`` pixels (``dx`` the object pixel). For pairs of neighbours the flat-field
    corrected frames ``I / <I> - 1`` (over the lit pixels, Hann window) are cross-correlated
    and the peak located to a fraction of a pixel. Conclusive when the median normalised peak
    exceeds ``MIN_PEAK`` and the ratios ``s / d`` agree (relative spread below
    ``MAX_SPREAD``); the object pixel the frames imply is then ``median(d / s)``. (A far-field
    pattern taken with a defocused beam also holds a moving shadow image in its bright-field
    disc, so this statistic alone does not tell the two apart; it tells whether the pixel is
    right.)

Decisions (``check_field``), ``data.check_field=false`` to skip them:

* read as near field: ``L < NEAR_ERROR_LIT`` (a bright centre) is an error, below
  ``NEAR_WARN_LIT`` a warning; a conclusive shift whose implied pixel differs from the
  near-field rule's by more than ``PIXEL_TOLERANCE`` is an error that names the
  ``focus_to_sample_m`` the shift implies (``M = p / dx``, ``z1 = z2 / (M - 1)``);
* read as far field: ``L > FAR_ERROR_LIT`` (lit to the corners) is an error, above
  ``FAR_WARN_LIT`` a warning; the message adds the ``focus_to_sample_m`` a conclusive shift
  implies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("ptyframe")

N_FRAMES = 64
MIN_REFERENCE_COUNTS = 100.0
MIN_PEAK = 0.25
MAX_SPREAD = 0.25
PIXEL_TOLERANCE = 0.25
NEAR_ERROR_LIT = 0.12
NEAR_WARN_LIT = 0.16
FAR_WARN_LIT = 0.7
FAR_ERROR_LIT = 0.9


@dataclass(frozen=True)
class FieldStatistics:
    """What the frames say: lit fraction, the pixel their shifts imply (None: inconclusive)."""

    lit_fraction: float | None
    implied_pixel_m: float | None
    median_shift_px: float | None
    median_step_m: float | None


def box_blur(x: np.ndarray, k: int = 5) -> np.ndarray:
    """Return the mean over ``k x k`` boxes (edges replicated), same shape."""
    pad = k // 2
    p = np.pad(x, pad, mode="edge")
    c = np.cumsum(np.cumsum(p, 0), 1)
    c = np.pad(c, ((1, 0), (1, 0)))
    h, w = x.shape
    s = c[k : k + h, k : k + w] - c[:h, k : k + w] - c[k : k + h, :w] + c[:h, :w]
    return s / (k * k)


def lit_fraction(frames: np.ndarray) -> float | None:
    """Return ``L`` of frames ``[n, H, W]`` (counts), or None when the counts are too few."""
    mean = box_blur(np.clip(frames, 0, None).mean(axis=0))
    ref = float(np.percentile(mean, 99.0))
    if ref * frames.shape[0] * 25 < MIN_REFERENCE_COUNTS:
        return None
    return float(np.mean(mean > 0.1 * ref))


def _peak(c: np.ndarray) -> tuple[float, float]:
    """Return the sub-pixel (dy, dx) of the maximum of a centred map (parabola per axis)."""
    k = np.unravel_index(int(np.argmax(c)), c.shape)
    out = []
    for axis in (0, 1):
        i = k[axis]
        lo = list(k)
        hi = list(k)
        lo[axis], hi[axis] = (i - 1) % c.shape[axis], (i + 1) % c.shape[axis]
        a, b, d = c[tuple(lo)], c[k], c[tuple(hi)]
        den = a - 2 * b + d
        out.append(i - c.shape[axis] // 2 + (0.5 * (a - d) / den if den < 0 else 0.0))
    return out[0], out[1]


def hologram_shift(
    frames: np.ndarray, pairs: np.ndarray, steps_m: np.ndarray
) -> tuple[float, float, float] | None:
    """Return (implied pixel m, median shift px, median step m), or None if inconclusive.

    ``pairs`` ``[P, 2]`` index ``frames``; ``steps_m`` ``[P]`` are the scan distances between
    the two frames of each pair. Pairs that did not move (holograms of one position at several
    distances) are left out; fewer than four moving pairs decide nothing.
    """
    moved = np.asarray(steps_m) > 0  # frames of one position (several distances) say nothing
    pairs, steps_m = np.asarray(pairs)[moved], np.asarray(steps_m)[moved]
    if len(pairs) < 4:
        return None
    mean = np.clip(frames, 0, None).mean(axis=0)
    h, w = mean.shape
    lit = mean > 0.1 * float(np.percentile(mean, 99.0))
    win = np.outer(np.hanning(h), np.hanning(w)) * lit
    norm = np.where(lit, mean, 1.0)
    shifts, peaks = [], []
    for i, j in pairs:
        a = (frames[i] / norm - 1.0) * win
        b = (frames[j] / norm - 1.0) * win
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        if na == 0 or nb == 0:
            return None
        c = np.fft.fftshift(np.fft.ifft2(np.fft.fft2(a) * np.conj(np.fft.fft2(b))).real)
        peaks.append(float(c.max()) / (na * nb))
        shifts.append(float(np.hypot(*_peak(c))))
    s, d = np.asarray(shifts), np.asarray(steps_m)
    if np.median(peaks) < MIN_PEAK or np.median(s) < 0.5:
        return None
    ratio = d / np.maximum(s, 1e-9)
    spread = float(np.median(np.abs(ratio - np.median(ratio))) / np.median(ratio))
    if spread > MAX_SPREAD:
        return None
    return float(np.median(ratio)), float(np.median(s)), float(np.median(d))


def neighbour_pairs(positions_m: np.ndarray, n_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``n_pairs`` (frame, nearest neighbour) index pairs spread over the scan, steps."""
    from scipy.spatial import cKDTree

    pos = np.asarray(positions_m, dtype=np.float64)
    if len(pos) < 2:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    first = np.unique(np.linspace(0, len(pos) - 1, min(n_pairs, len(pos))).round().astype(int))
    dist, idx = cKDTree(pos).query(pos[first], k=2)
    return np.stack([first, idx[:, 1]], axis=1), dist[:, 1]


def field_statistics(read: object, positions_m: np.ndarray, n_tiles: int) -> FieldStatistics:
    """Return the statistics of a scan; ``read(indices) -> frames [k, H, W]`` (counts)."""
    pairs, steps = neighbour_pairs(positions_m, N_FRAMES // 2)
    idx = np.unique(
        np.concatenate(
            [pairs.ravel(), np.linspace(0, n_tiles - 1, N_FRAMES // 2).round().astype(int)]
        )
    )
    frames = np.asarray(read(idx), dtype=np.float64)  # type: ignore[operator]
    where = {int(t): k for k, t in enumerate(idx)}
    local = np.array([[where[int(i)], where[int(j)]] for i, j in pairs], dtype=np.int64)
    lit = lit_fraction(frames)
    shift = hologram_shift(frames, local, steps) if len(local) >= 4 else None
    if shift is None:
        return FieldStatistics(lit, None, None, None)
    return FieldStatistics(lit, *shift)


def _implied_z1(stats: FieldStatistics, pitch_m: float | None, z2_m: float | None) -> str:
    """Return ``" data.focus_to_sample_m=Z"`` implied by the shifts, or ``""``."""
    if stats.implied_pixel_m is None or pitch_m is None or z2_m is None:
        return ""
    mag = pitch_m / stats.implied_pixel_m
    if mag <= 1.05:
        return ""
    return f" data.focus_to_sample_m={z2_m / (mag - 1.0):.3g}"


def check_field(
    stats: FieldStatistics,
    field: str,
    pixel_m: float,
    pitch_m: float | None,
    z2_m: float | None,
    where: str,
) -> str | None:
    """Raise nothing; return the error text (None: consistent) and log the warnings."""
    lit, z1 = stats.lit_fraction, _implied_z1(stats, pitch_m, z2_m)
    moves = ""
    if stats.implied_pixel_m is not None:
        moves = (
            f"the frames move {stats.median_shift_px:.3g} px per {stats.median_step_m:.3g} m "
            f"scan step, i.e. an object pixel of {stats.implied_pixel_m:.4g} m"
        )
    if field == "near":
        if lit is not None and lit < NEAR_ERROR_LIT:
            return (
                f"{where}: read as near field, but the mean frame is a bright centre (lit "
                f"fraction {lit:.3f}: a hologram spreads the beam over the detector). These "
                "look like far-field diffraction patterns: reconstruct in the far field "
                "(+imaging=farfield, or drop +imaging=nearfield / data.field=near), or set "
                "data.check_field=false"
            )
        if stats.implied_pixel_m is not None:
            ratio = stats.implied_pixel_m / pixel_m
            if abs(np.log(ratio)) > np.log(1 + PIXEL_TOLERANCE):
                fix = f"set{z1}" if z1 else "check data.focus_to_sample_m and the translations"
                return (
                    f"{where}: read as near field with an object pixel of {pixel_m:.4g} m, but "
                    f"{moves} ({ratio:.3g}x). If the beam diverges from a focus, {fix}; if "
                    "these are far-field patterns, reconstruct in the far field; or set "
                    "data.check_field=false"
                )
        if lit is not None and lit < NEAR_WARN_LIT:
            log.warning(
                "%s: read as near field, but only %.0f %% of the detector is lit (a far-field "
                "pattern's bright centre, or a beam smaller than the frame); check the "
                "geometry if the reconstruction fails",
                where,
                100 * lit,
            )
        return None
    if lit is not None and lit > FAR_ERROR_LIT:
        hint = f" ({moves})" if moves else ""
        near = f"+imaging=nearfield_conebeam{z1}" if z1 else "+imaging=nearfield"
        return (
            f"{where}: read as far field, but the beam lights the whole detector (lit fraction "
            f"{lit:.2f}; a far-field pattern has a bright centre and a dark field){hint}. These "
            f"look like near-field holograms: reconstruct with {near}, or set "
            "data.check_field=false"
        )
    if lit is not None and lit > FAR_WARN_LIT:
        log.warning(
            "%s: read as far field, but %.0f %% of the detector is lit (a near-field hologram, "
            "or a bright-field disc that fills the detector); if the reconstruction fails, try "
            "+imaging=nearfield",
            where,
            100 * lit,
        )
    return None
