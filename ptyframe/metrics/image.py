"""Image-domain quality metrics: NRMSE with the optimal complex scale, and SSIM.

NRMSE
    ``NRMSE = min_gamma ||gamma est - truth||_m / ||truth||_m`` over a mask ``m``; the optimal
    ``gamma = sum_m conj(est) truth / sum_m |est|^2`` (``correct_scale_phase``), so a global
    amplitude scale and phase offset, which ptychography cannot determine, do not count.

SSIM
    Wang, Bovik, Sheikh & Simoncelli, IEEE Trans. Image Process. 13, 600 (2004), eq. 13, with
    their settings: Gaussian window sigma = 1.5 (truncated at 3.5 sigma, an 11 x 11 window),
    ``K1 = 0.01``, ``K2 = 0.03``, ``C_i = (K_i L)^2`` with ``L`` the data range, population
    (not sample) statistics::

        SSIM(x, y) = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))

    The map is averaged over the image minus a 5-pixel border (as scikit-image does), over
    a mask, or with weights. For real images; apply to the amplitude and the phase of complex
    objects separately.

Against the truth (the ``nrmse`` / ``ssim`` metric components), floor-treated
    Both compare what ``ptyframe.metrics.align.prepare_pair`` returns: the windowed
    deviations ``D[x] = W (x - <x>_W)`` of the aligned, scaled estimate and of the truth,
    one smooth window ``W`` over the lit region, no vacuum substitution (which gave an
    estimate without information a shared edge and a good score; see that module).

    ``NRMSE = min_gamma ||gamma D[est] - D[truth]|| / ||D[truth]||``: 0 for the truth, exactly
    1 for a constant estimate (``D = 0``) and ``sqrt(1 - |rho|^2) ~ 1`` for one uncorrelated
    with the truth (``rho`` the complex correlation of the deviations). It is relative to the
    truth's *structure*, not to ``|truth| ~ 1``, so its values are much larger than those of
    an NRMSE over the raw object (where a constant near vacuum scores close to 0).

    SSIM of amplitude and of phase (``ssim_components``): the real images
    ``a = W (|x| - <|x|>_W)`` and ``p = W (arg(x / m) - <arg(x / m)>_W)``, ``m = <truth>_W``,
    for ``x`` the aligned estimate and the truth; the map is averaged with the weights ``W``;
    ``L`` = the truth component's peak-to-peak over the lit region. A constant estimate has
    ``a = p = 0`` and scores ``C1 C2 / ((mu_y^2 + C1)(s_y^2 + C2))``, ~0 wherever the truth
    has structure or a mean level above ``0.01 L``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ptyframe.errors import DataValidationError
from ptyframe.metrics.align import correct_scale_phase

__all__ = ["nrmse", "ssim", "ssim_components", "ssim_map"]

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def nrmse(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Return ``min_gamma ||gamma est - truth|| / ||truth||`` over ``mask`` (``[H, W]``).

    ``gamma`` is the least-squares complex scalar, so ``nrmse(c * truth, truth) == 0`` for
    every nonzero complex ``c``. Real or complex input.
    """
    est = np.asarray(estimate)
    tru = np.asarray(truth)
    if est.shape != tru.shape:
        raise DataValidationError(f"nrmse: estimate {est.shape} and truth {tru.shape} differ")
    sel = np.ones(est.shape, bool) if mask is None else np.asarray(mask, bool)
    corrected, _ = correct_scale_phase(est, tru, sel)
    norm = float(np.linalg.norm(tru[sel]))
    if norm == 0.0:
        raise DataValidationError("nrmse: the truth is zero over the mask; NRMSE is undefined")
    return float(np.linalg.norm(corrected[sel] - tru[sel]) / norm)


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float) -> np.ndarray:
    """Return the SSIM map ``[H, W]`` of real images ``a`` and ``b`` (Wang et al. 2004)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)

    def blur(z: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(z, SSIM_SIGMA, mode="reflect", truncate=SSIM_TRUNCATE)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return num / den


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    data_range: float | None = None,
    mask: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> float:
    """Return the mean SSIM of real images ``a`` (estimate) and ``b`` (reference) ``[H, W]``.

    ``data_range`` defaults to the peak-to-peak of ``b`` (over ``mask`` if given), else of
    ``a``, else 1. The map is averaged over ``mask``, with non-negative ``weights`` ``[H, W]``
    (then ``sum w SSIM / sum w``, over ``mask`` too if given), or over the image without its
    ``ceil(3.5 sigma) = 5`` pixel border when neither is given.
    """
    x = np.asarray(a)
    y = np.asarray(b)
    if x.shape != y.shape or x.ndim != 2:
        raise DataValidationError(
            f"ssim needs two 2-D images of one shape, got {x.shape}, {y.shape}"
        )
    if np.iscomplexobj(x) or np.iscomplexobj(y):
        raise DataValidationError(
            "ssim takes real images; pass np.abs(...) and np.angle(...) of a complex object "
            "separately"
        )
    sel = None if mask is None else np.asarray(mask, bool)
    if data_range is None:
        data_range = _peak_to_peak(y, sel) or _peak_to_peak(x, sel) or 1.0
    if not data_range > 0.0:
        raise ValueError(f"data_range = {data_range} must be > 0")
    smap = ssim_map(x, y, float(data_range))
    if weights is not None:
        wts = np.asarray(weights, dtype=np.float64) * (1.0 if sel is None else sel)
        if wts.shape != smap.shape or not float(wts.sum()) > 0.0:
            raise DataValidationError("ssim: the weights must be [H, W], >= 0, not all zero")
        return float(np.sum(wts * smap) / wts.sum())
    if sel is not None:
        if not sel.any():
            raise DataValidationError("ssim: the mask selects no pixel")
        return float(smap[sel].mean())
    pad = int(np.ceil(SSIM_TRUNCATE * SSIM_SIGMA))
    if min(x.shape) > 2 * pad:
        smap = smap[pad:-pad, pad:-pad]
    return float(smap.mean())


def _peak_to_peak(x: np.ndarray, sel: np.ndarray | None) -> float:
    vals = x if sel is None else x[sel]
    return float(np.ptp(vals)) if vals.size else 0.0


def ssim_components(
    aligned: np.ndarray, truth: np.ndarray, window: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float]:
    """Return ``{"ssim_amplitude", "ssim_phase"}`` of windowed deviations (module docstring).

    ``aligned`` (the estimate aligned and scaled onto ``truth``) and ``truth`` are complex
    ``[H, W]``; ``window`` is the comparison window ``W``; ``mask`` (default ``W > 0``) is
    where the data range is measured.
    """
    w = np.asarray(window, dtype=np.float64)
    sel = w > 0 if mask is None else np.asarray(mask, bool)
    tru = np.asarray(truth)
    mean = complex(np.sum(w * tru) / np.sum(w))
    ref = mean / abs(mean) if abs(mean) > 0 else 1.0
    out = {}
    for key, part in (
        ("ssim_amplitude", np.abs),
        ("ssim_phase", lambda z: np.angle(z / ref)),
    ):
        est_c, tru_c = part(np.asarray(aligned)), part(tru)
        rng = float(np.ptp(tru_c[sel])) if sel.any() else 0.0
        out[key] = ssim(
            _deviation(est_c, w), _deviation(tru_c, w), data_range=rng or 1.0, weights=w
        )
    return out


def _deviation(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Return ``w (x - sum(w x) / sum(w))`` with rounding noise of a constant set to 0."""
    dev = w * (x - np.sum(w * x) / np.sum(w))
    if float(np.linalg.norm(dev)) <= 1e-9 * float(np.linalg.norm(w * x)):
        return np.zeros_like(dev)
    return dev
