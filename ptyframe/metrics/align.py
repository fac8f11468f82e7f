"""Align a reconstruction with its ground truth before comparing them.

Starts from the PINE paper's FRC preprocessing (Yamada et al., J. Appl. Cryst. 2024, text
after eq. 23): "We first corrected the amplitude scale and phase offset between true and
reconstructed images, and then they were subpixel-aligned using the phase-only correlation
method. [...] the area where the total number of irradiated photons is less than 1% of the
maximum [...] set to a vacuum." The scale/phase correction, the phase-only-correlation
alignment and the 1 % illumination region are kept; the vacuum substitution is not (below).

Conventions (those of ``ptyframe.physics.fft``)
    ``shift_image(x, s)`` returns ``x(r - s)``: content moves by ``+s`` pixels, ``s = (y, x)``.
    ``register_subpixel(reference, moving)`` returns the ``s`` with
    ``moving ~= shift_image(reference, s)``; ``shift_image(moving, -s)`` aligns ``moving`` onto
    ``reference``.

Order of the steps
    Phase-only correlation (POC) is invariant to a complex scalar factor (the cross-power
    spectrum is normalised to unit modulus and the peak is taken in modulus), so the shift is
    estimated first, from the raw images, and the complex scale ``gamma`` afterwards, on the
    aligned pair. This gives the same shift as the paper's order and a better ``gamma``.

Alignment of weak-phase objects
    Objects near vacuum (``1 + 0j``) carry their structure in a small deviation riding on a
    large constant, and a reconstruction is only meaningful where it was lit. The shift is
    therefore estimated on ``w (x - <x>_w)``, with ``w`` a soft weight that is 1 well inside
    the lit region and falls smoothly to 0 at its edge (and at the array border), and
    ``<x>_w`` the ``w``-weighted mean. Removing the mean removes the vacuum constant and any
    phase offset's constant part; the taper removes the hard edges (the lit-region boundary
    and the circular wrap) that would otherwise correlate at zero shift.

What is compared: windowed deviations, no vacuum
    Setting both images to vacuum outside the lit region (the paper's last step) gives both
    the same sharp edge, whose spectrum reaches every frequency and correlates perfectly:
    an estimate that carries no information (a constant) then scores far above 0 at 1/2
    Nyquist, as does the truth low-passed at 1/4 Nyquist (``benchmarks/metric_floor.py``,
    ``docs/results/metric_floor.md``). ``prepare_pair`` instead returns, for both images, the
    *windowed deviation*

        ``D[x] = W (x - <x>_W)``,   ``<x>_W = sum W x / sum W``,

    with one window ``W = comparison_window(lit)`` for both: 0 outside the lit region,
    rising as a smoothstep over ``taper_px`` (default ``COMPARISON_TAPER_PX`` = 24 px) from
    the lit edge inwards. No value is substituted anywhere. Removing the mean removes the
    constant (vacuum) part, so a constant estimate has ``D = 0`` and scores 0 (not NaN) in
    the FRC and 1 in the NRMSE; multiplying both by the same smooth ``W`` leaves no edge
    of either image in the comparison. Why 24 px: the window's own spectrum (its edge is
    C1, so it falls as ``|k|^-3`` beyond ``~1/taper``) smears each frequency of the images;
    the reported FRC bands (``ptyframe.metrics.frc``) lie 1/8 Nyquist = 1/16 cycle/pixel
    apart, and a 24 px taper (1.5 periods of that spacing) keeps the leakage of the strong
    low frequencies into the next band within the floor that tests/test_metrics.py asserts
    on every ``conf/experiment`` geometry. Where the lit region is narrower, the taper shrinks
    to half its largest inside distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from ptyframe.errors import DataValidationError

#: Default ``eps`` of the regularised phase-only correlation (see ``register_subpixel``).
DEFAULT_REGULARIZATION = 10.0
#: Default number of register-shift-register passes in ``prepare_pair``.
DEFAULT_ALIGN_ITERATIONS = 3
#: Default taper of the comparison window, pixels (module docstring: "What is compared").
COMPARISON_TAPER_PX = 24.0
#: A deviation with RMS below this fraction of the image's RMS counts as zero (a constant).
ZERO_DEVIATION_RTOL = 1e-9

__all__ = [
    "PreparedPair",
    "alignment_weight",
    "comparison_window",
    "correct_scale_phase",
    "default_taper_px",
    "extend_beyond",
    "inside_distance",
    "lit_mask",
    "prepare_pair",
    "register_subpixel",
    "shift_image",
    "windowed_deviation",
]


def _freq_grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Return FFT-order frequencies ``ky [H, 1]`` and ``kx [1, W]`` in cycles per pixel."""
    return sfft.fftfreq(shape[0])[:, None], sfft.fftfreq(shape[1])[None, :]


def shift_image(x: np.ndarray, shift_yx: tuple[float, float] | np.ndarray) -> np.ndarray:
    """Return ``x(r - s)`` for an image ``x`` ``[H, W]`` by a Fourier phase ramp (circular).

    ``X(k) -> X(k) exp(-2 pi i (ky sy + kx sx))`` with ``k`` in cycles per pixel, the
    convention of ``ptyframe.physics.fft.fourier_shift``. Complex input keeps its dtype; real
    input returns the real part (the Nyquist row/column of an even-sized array makes a
    fractional shift of a real image slightly complex).
    """
    arr = np.asarray(x)
    ky, kx = _freq_grid(arr.shape[-2:])
    sy, sx = float(shift_yx[0]), float(shift_yx[1])
    ramp = np.exp(-2j * np.pi * (ky * sy + kx * sx))
    out = sfft.ifft2(sfft.fft2(arr.astype(np.complex128)) * ramp)
    if np.iscomplexobj(arr):
        return out.astype(arr.dtype, copy=False)
    return out.real.astype(arr.dtype if arr.dtype.kind == "f" else np.float64, copy=False)


def _dft_neighbourhood(
    spec: np.ndarray, centre: tuple[float, float], half_width: float, upsample: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate ``sum_k spec(k) exp(+2 pi i k.r)`` on a fine grid around ``centre``.

    The matrix-multiply DFT of Guizar-Sicairos, Thurman & Fienup (Opt. Lett. 33, 156, 2008,
    eq. 12): only the ``[n, n]`` neighbourhood is computed, ``n = 2 ceil(half_width u) + 1``,
    spacing ``1/u`` pixel. Returns the values ``[n, n]`` and the grid offsets ``ry``, ``rx``.
    """
    n_half = int(np.ceil(half_width * upsample))
    offsets = np.arange(-n_half, n_half + 1) / upsample
    ry = centre[0] + offsets
    rx = centre[1] + offsets
    ky = sfft.fftfreq(spec.shape[0])
    kx = sfft.fftfreq(spec.shape[1])
    kern_y = np.exp(2j * np.pi * ry[:, None] * ky[None, :])  # [n, H]
    kern_x = np.exp(2j * np.pi * kx[:, None] * rx[None, :])  # [W, n]
    return kern_y @ spec @ kern_x, ry, rx


def _parabola_offset(left: float, mid: float, right: float) -> float:
    """Return the vertex offset in (-0.5, 0.5) of the parabola through three samples."""
    denom = left - 2.0 * mid + right
    if denom >= 0.0:  # not a maximum
        return 0.0
    return float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))


def register_subpixel(
    reference: np.ndarray,
    moving: np.ndarray,
    upsample: int = 20,
    regularization: float = DEFAULT_REGULARIZATION,
) -> tuple[float, float]:
    """Return the sub-pixel shift ``(sy, sx)`` with ``moving ~= shift_image(reference, s)``.

    Phase-only correlation (Kuglin & Hines 1975; Takita et al. 2003), regularised: with
    ``F = fft2`` of the mean-subtracted images and ``X = conj(F ref) F mov``,

        ``C(k) = X(k) / (|X(k)| + eps mean_k |X|)``,   ``r(x) = ifft2(C)(x)``,

    ``|r|`` peaks at ``x = s``. ``eps = regularization``: 0 is pure POC (every frequency gets
    unit weight), large values tend to plain cross-correlation. Pure POC gives frequencies
    where neither image has signal the same weight as the rest; in a windowed reconstruction
    those carry noise and the window's own edges, which correlate at zero shift. Measured on
    a smooth weak-phase object under a Gaussian-lit window (256^2, shift (3.3, -1.7)): pure
    POC missed by 3 px, ``eps = 10`` by 0.06 px (0.00 after ``prepare_pair``'s iterations).
    Frequencies stronger than ``eps`` times the mean keep POC's flattening.

    The integer peak is refined by evaluating ``r`` on a grid of spacing ``1 / upsample``
    within +-1.5 px of it by the matrix-multiply DFT (Guizar-Sicairos et al. 2008), then by
    a parabola through the three finest samples on each axis. Works for real or complex
    ``[H, W]`` images; shifts are reported in ``(-H/2, H/2]`` x ``(-W/2, W/2]``.
    """
    ref = np.asarray(reference)
    mov = np.asarray(moving)
    if ref.shape != mov.shape or ref.ndim != 2:
        raise DataValidationError(
            f"register_subpixel needs two 2-D images of one shape, got {ref.shape} and "
            f"{mov.shape}. Crop or pad them to the same [H, W]."
        )
    if int(upsample) < 1:
        raise ValueError(f"upsample = {upsample} must be >= 1")
    if not regularization >= 0.0:
        raise ValueError(f"regularization = {regularization} must be >= 0")
    ref = ref.astype(np.complex128) - ref.mean()
    mov = mov.astype(np.complex128) - mov.mean()
    cross = np.conj(sfft.fft2(ref)) * sfft.fft2(mov)
    mod = np.abs(cross)
    floor = max(float(regularization) * float(mod.mean()), 1e-15 * float(mod.max()), 1e-300)
    spec = cross / (mod + floor) if regularization > 0 else cross / np.maximum(mod, floor)
    corr = np.abs(sfft.ifft2(spec))
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    h, w = corr.shape
    coarse = (float(iy - h if iy > h // 2 else iy), float(ix - w if ix > w // 2 else ix))
    if int(upsample) == 1:
        return coarse
    fine, ry, rx = _dft_neighbourhood(spec, coarse, 1.5, int(upsample))
    amp = np.abs(fine)
    jy, jx = np.unravel_index(int(np.argmax(amp)), amp.shape)
    step = 1.0 / int(upsample)
    dy = dx = 0.0
    if 0 < jy < amp.shape[0] - 1:
        dy = _parabola_offset(amp[jy - 1, jx], amp[jy, jx], amp[jy + 1, jx]) * step
    if 0 < jx < amp.shape[1] - 1:
        dx = _parabola_offset(amp[jy, jx - 1], amp[jy, jx], amp[jy, jx + 1]) * step
    return float(ry[jy] + dy), float(rx[jx] + dx)


def correct_scale_phase(
    estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, complex]:
    """Return ``(gamma * estimate, gamma)`` with the least-squares complex scalar ``gamma``.

    ``gamma = <truth, est> / <est, est> = sum_m conj(est) truth / sum_m |est|^2`` over the
    mask ``m`` minimises ``||gamma est - truth||_m``. Its modulus corrects the amplitude scale
    and its argument the global phase offset, both at once (the PINE paper's first
    preprocessing step after eq. 23). ``mask`` may be boolean or non-negative weights
    ``[H, W]`` (then ``sum_m`` is weighted). Shapes ``[H, W]``; the result is complex.
    """
    est = np.asarray(estimate).astype(np.complex128, copy=False)
    tru = np.asarray(truth).astype(np.complex128, copy=False)
    wts = np.ones(est.shape) if mask is None else np.asarray(mask, dtype=np.float64)
    denom = float(np.sum(wts * np.abs(est) ** 2))
    if denom == 0.0:
        return est.copy(), complex(1.0)
    gamma = complex(np.sum(wts * np.conj(est) * tru) / denom)
    return gamma * est, gamma


def lit_mask(
    illumination: np.ndarray | None, shape: tuple[int, int], threshold: float
) -> np.ndarray:
    """Return the boolean ``[H, W]`` mask where ``illumination >= threshold * max``."""
    if illumination is None:
        return np.ones(shape, bool)
    illum = np.asarray(illumination, dtype=np.float64)
    if illum.shape != tuple(shape):
        raise DataValidationError(
            f"illumination map has shape {illum.shape} but the images are {tuple(shape)}. "
            "Pass the illumination (total photons per object pixel) on the object's frame."
        )
    peak = float(np.nanmax(illum)) if illum.size else 0.0
    if not np.isfinite(peak) or peak <= 0.0:
        raise DataValidationError(
            "illumination map has no positive finite value. Pass the total photons per object "
            "pixel (e.g. /truth/illumination of a simulated file), or None for no mask."
        )
    return illum >= float(threshold) * peak


def default_taper_px(shape: tuple[int, ...]) -> float:
    """Return the default taper width ``max(4, 0.04 min(H, W))`` pixels."""
    return max(4.0, 0.04 * min(shape[-2:]))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """Return ``3 t^2 - 2 t^3`` for ``t = clip(x, 0, 1)`` (0 -> 1 with zero end slopes)."""
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def inside_distance(mask: np.ndarray) -> np.ndarray:
    """Return the Euclidean distance ``[H, W]`` of each pixel to the nearest unlit pixel.

    The array border counts as unlit (a lit pixel on the border has distance 1), so weights
    built from it also vanish where the circular FFT would wrap.
    """
    padded = np.pad(np.asarray(mask, bool), 1, constant_values=False)
    return ndimage.distance_transform_edt(padded)[1:-1, 1:-1]


def alignment_weight(
    mask: np.ndarray,
    margin_px: float = 0.0,
    taper_px: float | None = None,
    distance: np.ndarray | None = None,
) -> np.ndarray:
    """Return a soft weight ``[H, W]`` in [0, 1] that is 0 outside ``mask`` and near its edge.

    ``w = smoothstep((d - margin_px) / taper_px)`` with ``d = inside_distance(mask)``: zero
    up to ``margin_px`` inside the edge, one from ``margin_px + taper_px`` on
    (``taper_px`` defaults to ``default_taper_px``). Pass ``distance`` to reuse ``d``.
    """
    d = inside_distance(mask) if distance is None else distance
    taper = default_taper_px(d.shape) if taper_px is None else float(taper_px)
    return _smoothstep((d - float(margin_px)) / taper)


def extend_beyond(
    x: np.ndarray, mask: np.ndarray, level: complex, taper_px: float | None = None
) -> np.ndarray:
    """Return ``x`` on ``mask`` and a smooth extension of it elsewhere ``[H, W]``.

    Each pixel outside ``mask`` takes the value of its nearest pixel inside, blended towards
    ``level`` over ``taper_px``: ``level + (1 - smoothstep(d_out / taper)) (x_nearest -
    level)``. A reconstruction is unconstrained outside the lit region (often still the
    initial vacuum while the lit part carries a scale and phase offset); this removes the
    jump there, which a Fourier shift would otherwise spread as ringing over the lit region.
    """
    m = np.asarray(mask, bool)
    if m.all():
        return np.asarray(x).copy()
    dist_out, (iy, ix) = ndimage.distance_transform_edt(~m, return_indices=True)
    taper = default_taper_px(m.shape) if taper_px is None else float(taper_px)
    keep = 1.0 - _smoothstep(dist_out / taper)
    return level + keep * (np.asarray(x)[iy, ix] - level)


def comparison_window(
    mask: np.ndarray, taper_px: float | None = None, distance: np.ndarray | None = None
) -> np.ndarray:
    """Return the comparison window ``W`` ``[H, W]`` in [0, 1] of a lit ``mask``.

    ``W = smoothstep(d / t)`` with ``d = inside_distance(mask)`` (0 outside the mask and at the
    array border) and ``t = min(taper_px, max(d) / 2)``, ``taper_px`` defaulting to
    ``COMPARISON_TAPER_PX``; see the module docstring for why.
    """
    d = inside_distance(mask) if distance is None else distance
    taper = COMPARISON_TAPER_PX if taper_px is None else float(taper_px)
    if not taper > 0.0:
        raise ValueError(f"taper_px = {taper_px} must be > 0")
    taper = min(taper, max(0.5 * float(d.max()), 1.0))
    return _smoothstep(d / taper)


def windowed_deviation(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Return ``D[x] = W (x - <x>_W)`` ``[H, W]``, exactly 0 where ``x`` is constant on ``W``.

    ``<x>_W = sum W x / sum W``. A deviation whose RMS is below ``ZERO_DEVIATION_RTOL`` of the
    RMS of ``W x`` is rounding noise of a constant image and is returned as zeros.
    """
    w = np.asarray(window, dtype=np.float64)
    total = float(w.sum())
    if total <= 0.0:
        raise DataValidationError("the comparison window is empty; lower the threshold")
    xx = np.asarray(x)
    dev = w * (xx - np.sum(w * xx) / total)
    scale = float(np.linalg.norm(w * xx))
    if float(np.linalg.norm(dev)) <= ZERO_DEVIATION_RTOL * scale:
        return np.zeros_like(dev)
    return dev


@dataclass
class PreparedPair:
    """An estimate and its truth ready for comparison (all arrays ``[H, W]``).

    ``estimate`` and ``truth`` are the windowed deviations ``D = W (x - <x>_W)`` (module
    docstring) of the aligned, scaled estimate and of the truth; ``window`` is ``W``,
    ``mask`` the lit region, ``aligned`` the estimate shifted by ``-shift_yx`` onto the truth
    and multiplied by ``gamma`` (not windowed: its values outside ``mask`` are a smooth
    extension, not data).
    """

    estimate: np.ndarray
    truth: np.ndarray
    mask: np.ndarray
    shift_yx: tuple[float, float]
    gamma: complex
    window: np.ndarray | None = None
    aligned: np.ndarray | None = None
    truth_image: np.ndarray | None = None


def prepare_pair(
    estimate: np.ndarray,
    truth: np.ndarray,
    illumination: np.ndarray | None = None,
    threshold: float = 0.01,
    upsample: int = 20,
    iterations: int = DEFAULT_ALIGN_ITERATIONS,
    regularization: float = DEFAULT_REGULARIZATION,
    taper_px: float | None = None,
) -> PreparedPair:
    """Prepare ``[H, W]`` images for comparison (module docstring; PINE paper after eq. 23).

    1. ``lit = illumination >= threshold * max(illumination)`` (all pixels without a map).
    2. The estimate outside ``lit`` is replaced by ``extend_beyond`` (its lit values carried
       outwards, fading to its mean), so shifting it does not ring.
    3. ``s = register_subpixel(w (truth - <truth>_w), w (est - <est>_w))`` with the soft
       weight ``w = alignment_weight(lit, margin)`` (see the module docstring), then
       ``est <- est(r + s)``. Repeated up to ``iterations`` times on the shifted estimate,
       adding up the residual shifts, with ``margin = |s| + 1`` px so the window only sees
       genuine (not shifted-in) pixels: the fixed window biases one pass towards zero shift
       (by ~0.05 px for a 3 px shift) and the bias vanishes with the residual.
    4. ``est <- gamma est`` with ``gamma`` from ``correct_scale_phase`` weighted by the last
       window ``w`` (the lit region away from its poorly determined edge).
    5. Both images become windowed deviations ``W (x - <x>_W)`` with one
       ``W = comparison_window(lit, taper_px)``; nothing is set to vacuum.

    Returns complex128 arrays in a ``PreparedPair``.
    """
    est = _as_image(estimate, "estimate")
    tru = _as_image(truth, "truth")
    if est.shape != tru.shape:
        raise DataValidationError(
            f"estimate has shape {est.shape} but truth has {tru.shape}. Reconstruct on the "
            "truth's object frame (same size and origin) before comparing."
        )
    if not 0.0 <= float(threshold) < 1.0:
        raise ValueError(f"threshold = {threshold} must lie in [0, 1)")
    lit = lit_mask(illumination, est.shape, threshold)
    if not lit.any():
        raise DataValidationError("no pixel is lit above the threshold; lower the threshold")
    dist = inside_distance(lit)
    shift, aligned, w = _align(est, tru, lit, dist, upsample, iterations, regularization)
    corrected, gamma = correct_scale_phase(aligned, tru, w)
    window = comparison_window(lit, taper_px, distance=dist)
    return PreparedPair(
        windowed_deviation(corrected, window),
        windowed_deviation(tru, window),
        lit,
        shift,
        gamma,
        window,
        corrected,
        tru,
    )


def _align(
    est: np.ndarray,
    tru: np.ndarray,
    lit: np.ndarray,
    dist: np.ndarray,
    upsample: int,
    iterations: int,
    regularization: float,
) -> tuple[tuple[float, float], np.ndarray, np.ndarray]:
    """Return ``(shift, aligned estimate, last alignment weight)`` (``prepare_pair`` 2-3)."""
    inner = alignment_weight(lit, 0.0, distance=dist)
    if float(inner.sum()) <= 0.0:
        inner = lit.astype(np.float64)
    filled = extend_beyond(est, lit, np.sum(inner * est) / np.sum(inner))
    total = np.zeros(2)
    aligned = filled
    w = inner
    for it in range(max(1, int(iterations))):
        if it > 0:
            w = alignment_weight(lit, np.ceil(np.abs(total).max()) + 1.0, distance=dist)
            if float(w.sum()) <= 0.0:
                w = inner
        step = register_subpixel(
            _weighted_deviation(tru, w), _weighted_deviation(aligned, w), upsample, regularization
        )
        total += step
        aligned = shift_image(filled, (-total[0], -total[1]))
        if max(abs(step[0]), abs(step[1])) < 0.5 / max(int(upsample), 1):
            break
    return (float(total[0]), float(total[1])), aligned, w


def _weighted_deviation(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Return ``w (x - sum(w x) / sum(w))``."""
    return w * (x - np.sum(w * x) / np.sum(w))


def _as_image(x: np.ndarray, what: str) -> np.ndarray:
    """Return ``x`` as a complex128 ``[H, W]`` array (a leading axis of length 1 is dropped)."""
    arr = np.asarray(x)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise DataValidationError(
            f"{what} must be one 2-D image [H, W], got shape {arr.shape}. Compare one slice "
            "at a time."
        )
    if not np.all(np.isfinite(arr)):
        raise DataValidationError(f"{what} contains NaN or infinite values")
    return arr.astype(np.complex128, copy=False)
