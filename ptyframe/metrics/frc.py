"""Fourier ring correlation (FRC) between two images, with the usual threshold curves.

FRC (Rosenthal & Henderson 2003; PINE paper, Yamada et al. 2024, eq. 23)::

    FRC(S) = Re sum_{k in I(S)} A(k) conj(B(k))
             / sqrt( sum_{I(S)} |A(k)|^2  sum_{I(S)} |B(k)|^2 )

with ``A = fft2(a)``, ``B = fft2(b)`` and ``I(S)`` the pixels of the ring at spatial
frequency ``S``.

Rings. The radial frequency of a pixel is ``|k| = sqrt(ky^2 + kx^2)`` in cycles per pixel
(``fftfreq`` on each axis), so rectangular images get physical rings. Ring ``j`` (``j = 0 ..
n_bins - 1``) holds the pixels with ``|k|`` in ``[(j - 1/2) d, (j + 1/2) d)``, centred at
``j d``, with ``d = 0.5 / (n_bins - 1)``: ring 0 is the zero frequency, the last ring is
centred at Nyquist, ``1 / (2 pixel)``. The default ``n_bins = min(H, W) // 2 + 1`` gives
``d = 1 / min(H, W)``, one ring per frequency sample of the shorter axis. The corners beyond
Nyquist are left out.

Thresholds. ``one_seventh`` is the constant 1/7. ``half_bit`` is van Heel & Schatz (J. Struct.
Biol. 151, 250, 2005, eq. 17) with ``n`` the number of pixels in the ring::

    T(n) = (e + (2 sqrt(e) + 1) / sqrt(n)) / (1 + e + 2 sqrt(e) / sqrt(n)),
    e = (sqrt(2) - 1) / 2 = 0.2071   ->   T = (0.2071 + 1.9102/sqrt n) / (1.2071 + 0.9102/sqrt n)

For complex images every pixel of a ring is an independent sample (no Friedel symmetry), so
``n`` is the full ring count. When the images are windowed (``W x``), neighbouring Fourier
pixels are correlated over ``~1/support``; the threshold then uses ``n * support_fraction``
with ``support_fraction = (sum W^2)^2 / (sum W^4) / (H W)``, the effective support of ``W``
as a fraction of the array (``support_fraction``; ``frc_against_truth`` passes it).

Empty rings. A ring where one image has power and the other none scores 0 (no correlation:
a constant estimate, whose deviation from its mean is zero, scores 0, not NaN); a ring where
both have none is NaN.

Reported bands. The scalars the runner, recon.h5 and the report record ("FRC at 1/4, 1/2,
3/4 Nyquist") are band values, ``FrcResult.band(f)``: the pixel-weighted mean of the ring
FRCs whose centre lies in ``[f - 1/8, f + 1/8)`` of Nyquist, i.e. the three bands tile
1/8 .. 7/8 Nyquist. One ring of a ~100 px lit region holds few independent samples (the FRC
of unrelated images scatters by ``~1/sqrt(2 n)``, ~0.06-0.09 there); the band mean scatters
by ~0.02 and follows the curve to second order where it is smooth.

Against the truth. ``frc_against_truth`` compares the windowed deviations of
``ptyframe.metrics.align.prepare_pair`` (the paper's scale/phase correction and
phase-only-correlation alignment, one smooth window over the 1 %-lit region for both images,
no vacuum substitution; see that module for why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from ptyframe.errors import DataValidationError
from ptyframe.metrics.align import PreparedPair, prepare_pair

__all__ = [
    "BAND_HALF_WIDTH",
    "REPORTED_BANDS",
    "FrcResult",
    "frc",
    "frc_against_truth",
    "frc_of_pair",
    "half_bit_threshold",
    "support_fraction",
    "ONE_SEVENTH",
]

ONE_SEVENTH = 1.0 / 7.0
#: Half width of a reported band, as a fraction of Nyquist (module docstring).
BAND_HALF_WIDTH = 0.125
#: The reported bands, fractions of Nyquist, and their result-key stems.
REPORTED_BANDS = {0.25: "quarter", 0.5: "half", 0.75: "3q"}
#: SNR per half data set at the 1/2-bit criterion (van Heel & Schatz 2005): (sqrt 2 - 1) / 2.
HALF_BIT_SNR = (np.sqrt(2.0) - 1.0) / 2.0


def half_bit_threshold(n_pixels: np.ndarray) -> np.ndarray:
    """Return the 1/2-bit threshold for rings of ``n_pixels`` pixels (van Heel & Schatz 2005).

    ``T(n) = (e + (2 sqrt e + 1)/sqrt n) / (1 + e + 2 sqrt e / sqrt n)``, ``e = 0.2071``;
    ``T -> 0.1716`` as ``n -> inf`` and ``T = 1`` at ``n = 1``. Rings with no pixel get NaN.
    """
    n = np.asarray(n_pixels, dtype=np.float64)
    e = HALF_BIT_SNR
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.sqrt(n)
        out = (e + (2.0 * np.sqrt(e) + 1.0) * inv) / (1.0 + e + 2.0 * np.sqrt(e) * inv)
    return np.where(n > 0, out, np.nan)


@dataclass
class FrcResult:
    """One FRC curve: arrays ``[n_bins]`` over ring centre frequencies."""

    freq_per_m: np.ndarray
    frc: np.ndarray
    n_pixels: np.ndarray
    half_bit: np.ndarray
    one_seventh: np.ndarray
    pixel_size_m: float
    #: The first ring the threshold crossing considers (rings below it are inside the
    #: spectral width of a comparison window, where mean removal decides; see frc_of_pair).
    first_ring: int = 1

    @property
    def nyquist_per_m(self) -> float:
        """Return the Nyquist frequency ``1 / (2 pixel)`` in cycles per metre."""
        return 0.5 / self.pixel_size_m

    def at(self, fraction_of_nyquist: float) -> float:
        """Return the FRC at ``fraction_of_nyquist`` of Nyquist by linear interpolation."""
        frac = self.freq_per_m / self.nyquist_per_m
        ok = np.isfinite(self.frc)
        return float(np.interp(float(fraction_of_nyquist), frac[ok], self.frc[ok]))

    def band(self, fraction_of_nyquist: float, half_width: float = BAND_HALF_WIDTH) -> float:
        """Return the pixel-weighted mean FRC of the rings in ``f +- half_width`` of Nyquist.

        Rings with centre in ``[f - half_width, f + half_width)`` (fractions of Nyquist) and a
        finite FRC count, each weighted by its pixel count; NaN if there is none.
        """
        frac = self.freq_per_m / self.nyquist_per_m
        f, hw = float(fraction_of_nyquist), float(half_width)
        sel = (frac >= f - hw) & (frac < f + hw) & np.isfinite(self.frc)
        weight = self.n_pixels[sel].astype(np.float64)
        if not sel.any() or weight.sum() <= 0:
            return float("nan")
        return float(np.sum(self.frc[sel] * weight) / weight.sum())

    def threshold_curve(self, threshold: str = "half_bit") -> np.ndarray:
        """Return the threshold curve ``[n_bins]`` named ``"half_bit"`` or ``"1/7"``."""
        if threshold in ("half_bit", "1/2-bit", "half-bit"):
            return self.half_bit
        if threshold in ("1/7", "one_seventh"):
            return self.one_seventh
        raise ValueError(f"unknown FRC threshold {threshold!r}; use 'half_bit' or '1/7'")

    def crossing_per_m(self, threshold: str = "half_bit") -> float | None:
        """Return the first frequency above zero where the FRC falls below the threshold.

        Scans rings ``first_ring, first_ring + 1, ...`` (default from 1) for the first ``j``
        with ``FRC_j < T_j`` and interpolates linearly in ``FRC - T`` between the ring before
        and ``j``. ``None`` if it never falls.
        """
        curve = self.threshold_curve(threshold)
        diff = self.frc - curve
        valid = np.flatnonzero(np.isfinite(diff))
        valid = valid[valid >= max(int(self.first_ring) - 1, 0)]
        for pos in range(1, len(valid)):
            j = valid[pos]
            if diff[j] < 0.0:
                i = valid[pos - 1]
                f0, f1 = self.freq_per_m[i], self.freq_per_m[j]
                if diff[i] <= 0.0:
                    return float(f0) if i > 0 else float(f1)
                t = diff[i] / (diff[i] - diff[j])
                return float(f0 + t * (f1 - f0))
        return None

    def resolution_m(self, threshold: str = "half_bit") -> float | None:
        """Return the resolution ``1 / S_cross`` in metres (full period), or ``None``.

        ``S_cross`` is ``crossing_per_m(threshold)``; ``None`` means the FRC stays above the
        threshold up to Nyquist (resolution limited by the pixel, ``<= 2 pixel``).
        """
        f = self.crossing_per_m(threshold)
        if f is None or f <= 0.0:
            return None
        return 1.0 / f


def support_fraction(window: np.ndarray) -> float:
    """Return ``(sum W^2)^2 / (sum W^4) / (H W)``, the effective support of a window ``W``."""
    w2 = np.asarray(window, dtype=np.float64) ** 2
    den = float(np.sum(w2**2))
    return float(np.sum(w2) ** 2 / den / w2.size) if den > 0 else 1.0


def frc(
    a: np.ndarray,
    b: np.ndarray,
    pixel_size_m: float = 1.0,
    n_bins: int | None = None,
    support_fraction: float = 1.0,
) -> FrcResult:
    """Return the FRC (eq. 23 of the PINE paper) between images ``a`` and ``b`` ``[H, W]``.

    Real or complex input; see the module docstring for the rings and thresholds
    (``support_fraction`` in (0, 1] scales the ring counts the 1/2-bit threshold uses).
    """
    aa = np.asarray(a)
    bb = np.asarray(b)
    if aa.shape != bb.shape or aa.ndim != 2:
        raise DataValidationError(
            f"FRC needs two 2-D images of one shape, got {aa.shape} and {bb.shape}"
        )
    if not pixel_size_m > 0.0:
        raise ValueError(f"pixel_size_m = {pixel_size_m} must be > 0")
    h, w = aa.shape
    nb = min(h, w) // 2 + 1 if n_bins is None else int(n_bins)
    if nb < 2:
        raise ValueError(f"n_bins = {nb} must be >= 2 (image {aa.shape} too small?)")
    step = 0.5 / (nb - 1)
    ky = sfft.fftfreq(h)[:, None]
    kx = sfft.fftfreq(w)[None, :]
    radius = np.sqrt(ky**2 + kx**2)
    ring = np.floor(radius / step + 0.5).astype(np.int64).ravel()
    keep = ring < nb
    ring = ring[keep]
    fa = sfft.fft2(aa.astype(np.complex128)).ravel()[keep]
    fb = sfft.fft2(bb.astype(np.complex128)).ravel()[keep]
    cross = np.bincount(ring, weights=(fa * np.conj(fb)).real, minlength=nb)
    pow_a = np.bincount(ring, weights=np.abs(fa) ** 2, minlength=nb)
    pow_b = np.bincount(ring, weights=np.abs(fb) ** 2, minlength=nb)
    counts = np.bincount(ring, minlength=nb)
    denom = np.sqrt(pow_a * pow_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(denom > 0, cross / denom, np.nan)
    value = np.where((denom == 0) & (pow_a + pow_b > 0), 0.0, value)  # one image empty: 0
    freq = np.arange(nb) * step / float(pixel_size_m)
    return FrcResult(
        freq_per_m=freq,
        frc=value,
        n_pixels=counts,
        half_bit=half_bit_threshold(counts * float(support_fraction)),
        one_seventh=np.full(nb, ONE_SEVENTH),
        pixel_size_m=float(pixel_size_m),
    )


def frc_against_truth(
    estimate: np.ndarray,
    truth: np.ndarray,
    illumination: np.ndarray | None,
    pixel_size_m: float,
    threshold: float = 0.01,
    upsample: int = 20,
    n_bins: int | None = None,
    taper_px: float | None = None,
) -> tuple[FrcResult, PreparedPair]:
    """Return the FRC of ``estimate`` against ``truth`` after ``prepare_pair``, and the pair.

    The PINE paper's protocol (eq. 23 and the text after it) for scale/phase correction and
    sub-pixel alignment by phase-only correlation over the region lit by at least
    ``threshold`` of the maximum total photons; then the FRC of the two windowed deviations
    ``W (x - <x>_W)`` with one smooth window ``W`` (taper ``taper_px``) over that region, in
    place of the paper's vacuum substitution, whose shared sharp edge gives an estimate
    without information (a constant) a high FRC (``ptyframe.metrics.align``).
    """
    pair = prepare_pair(
        estimate, truth, illumination, threshold=threshold, upsample=upsample, taper_px=taper_px
    )
    return frc_of_pair(pair, pixel_size_m, n_bins), pair


def frc_of_pair(pair: PreparedPair, pixel_size_m: float, n_bins: int | None = None) -> FrcResult:
    """Return the FRC of a ``PreparedPair``'s windowed deviations (threshold on its support).

    The 1/2-bit threshold uses the ring counts times the window's ``support_fraction``; the
    crossing search starts at ring ``ceil(2 N / L)``, ``N = min(H, W)``, ``L`` the window's
    effective width ``sqrt(support_fraction H W)`` px: rings below it lie within twice the
    window's spectral width, where the mean removal (ring 0) spreads. Ring 0 itself is NaN:
    both deviations have zero weighted mean by construction, so it holds rounding only.
    """
    if pair.window is None:
        return frc(pair.estimate, pair.truth, pixel_size_m, n_bins)
    frac = support_fraction(pair.window)
    res = frc(pair.estimate, pair.truth, pixel_size_m, n_bins, support_fraction=frac)
    res.frc[0] = np.nan
    width_px = math.sqrt(frac * pair.window.size)
    res.first_ring = max(1, math.ceil(2.0 * min(pair.window.shape) / max(width_px, 1.0)))
    return res
