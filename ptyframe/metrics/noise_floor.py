"""The data error that Poisson noise alone leaves (the noise floor), and a stall check.

The PIE engines report the normalised amplitude error (``EpochReport.data_error``)::

    E = sum_q | sqrt(lam_q) - sqrt(N_q) | / sum_q sqrt(N_q)

over the measured pixels ``q`` of every pattern, with ``lam_q`` the modelled and ``N_q`` the
measured intensity (photon counts). If the model were the truth, each ``N_q`` would be a
Poisson draw of mean ``lam_q`` and the expected numerator would be ``sum_q g(lam_q)`` with

    g(lam) = E |sqrt(N) - sqrt(lam)|,   N ~ Poisson(lam)
           = sum_{n>=0} exp(-lam) lam^n / n! * |sqrt(n) - sqrt(lam)|          (exact series)

Limits: ``g(lam) -> sqrt(lam)`` for ``lam -> 0`` (almost always ``N = 0``), and for large
``lam`` the delta method gives ``sqrt(N) - sqrt(lam) ~ Normal(0, 1/4)``, so
``g -> (1/2) sqrt(2/pi) = 1/sqrt(2 pi) = 0.3989`` (the squared amplitude error tends to 1/4
per pixel, the familiar variance-stabilising property of the square root). ``g`` is
tabulated by the series on a log grid up to ``lam = 1e4`` (where it is within 1e-4 of the
limit) and interpolated; above, the limit is used.

Which ``lam``? Only the counts are known, and ``g`` cannot be estimated pixel by pixel from
one count (the plug-in ``g(N)`` gives 0 for every empty pixel, yet a dark-field pixel of
mean 0.01 contributes ``g = 0.1``, so on sparse patterns the plug-in estimate falls far
below the floor). The counts are therefore pooled: in each detector annulus (pixels at the
same rounded distance from the zero frequency, over all patterns) the means ``lam`` are
taken as Gamma-distributed with the moments that the counts imply (``E N = m``,
``Var N = m + Var lam``, so ``Var lam = max(Var N - m, 0)``; a Gamma law of shape 1 is the
exponential intensity law of fully developed speckle, a large shape a nearly constant
bright field). The annulus then contributes ``n_pixels * E_{lam ~ Gamma} g(lam)``, evaluated
at 64 fixed quantiles of the Gamma law (deterministic). The floor is::

    floor = sum_annuli n_a E_a[g(lam)] / sum_q sqrt(N_q)

On simulated particle films (81 and 625 patterns of 128x128 at 1e5 photons; a natural image
at 1e6) this lies within 1.5 % of the error of the true object and probe, and within 3 % on
the 64 px cases of ``tests/test_noise_floor.py`` (1e3 to 1e6 photons per pattern).

A model fitted to amplitudes can go *below* this floor: in the dark field the minimiser of
``sum (|Psi| - sqrt(N))^2`` is ``E sqrt(N)``, which is below ``sqrt(lam)`` at low counts, so
a converged amplitude-based engine slightly under-predicts the weak scattering and scores
less than the truth would. What cannot happen without the model being wrong is an error far
*above* the floor: ``StallCheck`` (``check_run``, called by the runner at the end of a run)
flags a run whose final error exceeds ``factor`` times the floor (default 1.25; see
``STALL_FACTOR`` for the measured ratios, and what it cannot see: a wrong model that fits the
counts as well as the truth). Data that are not whole counts (scaled, averaged) are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

#: ``lim_{lam -> inf} E|sqrt(N) - sqrt(lam)|`` for ``N ~ Poisson(lam)``: ``1 / sqrt(2 pi)``.
LARGE_COUNT_LIMIT = 1.0 / math.sqrt(2.0 * math.pi)

#: Above this mean count the large-count limit replaces the series.
SERIES_MAX_COUNT = 1.0e4

#: A final data error above this multiple of the floor counts as stalled: it lies between the
#: ratios of converged runs and of runs stuck at a wrong probe, as measured on the particle
#: films of ``docs/results/particle_film_defaults.md`` and asserted by
#: ``tests/test_noise_floor.py``. Not caught: wrong solutions that fit the data as well as
#: the truth (a focused start locked into a wrong probe; at high counts amplitude fits end
#: below the floor whether or not they recovered the object).
STALL_FACTOR = 1.25

_QUANTILES = (np.arange(64) + 0.5) / 64


@lru_cache(maxsize=1)
def _table() -> tuple[np.ndarray, np.ndarray]:
    """Return ``(lam grid, g(lam))`` by the exact series (module docstring).

    For each ``lam`` the terms ``n`` in ``lam +- 12 sqrt(lam) (+30)`` are summed; the Poisson
    mass outside is below 1e-30.
    """
    from scipy.special import gammaln

    lam = np.logspace(-8, math.log10(SERIES_MAX_COUNT), 1600)
    half = 12.0 * np.sqrt(lam) + 30.0
    start = np.floor(np.clip(lam - half, 0.0, None))
    g = np.empty_like(lam)
    for i in range(0, lam.size, 100):  # chunks of rising lam: small [chunk, width] arrays
        sl = slice(i, i + 100)
        width = int(np.ceil(2.0 * half[sl].max())) + 1
        n = start[sl, None] + np.arange(width)[None, :]
        lv = lam[sl, None]
        pmf = np.exp(n * np.log(lv) - lv - gammaln(n + 1.0))
        terms = pmf * np.abs(np.sqrt(n) - np.sqrt(lv))
        g[sl] = terms.sum(axis=1)
    return np.concatenate([[0.0], lam]), np.concatenate([[0.0], g])


def expected_abs_amplitude_error(lam: np.ndarray | float) -> np.ndarray:
    """Return ``g(lam) = E|sqrt(N) - sqrt(lam)|`` for ``N ~ Poisson(lam)``, elementwise."""
    grid, g = _table()
    lam = np.clip(np.asarray(lam, dtype=np.float64), 0.0, None)
    out = np.interp(lam, grid, g)
    return np.where(lam > SERIES_MAX_COUNT, LARGE_COUNT_LIMIT, out)


@dataclass
class AnnulusMoments:
    """Per-annulus sums of the counts: pixels ``n``, ``sum N``, ``sum N^2``; and ``sum sqrt N``.

    Sums (not means) so that the moments of several ranks' shards simply add.
    """

    n: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    amp_sum: float

    def as_scalars(self) -> tuple[float, ...]:
        return (*self.n.tolist(), *self.s1.tolist(), *self.s2.tolist(), self.amp_sum)

    @classmethod
    def from_scalars(cls, values: tuple[float, ...]) -> AnnulusMoments:
        k = (len(values) - 1) // 3
        v = np.asarray(values[:-1], dtype=np.float64)
        return cls(v[:k], v[k : 2 * k], v[2 * k :], float(values[-1]))


def annulus_index(window: tuple[int, int]) -> np.ndarray:
    """Return the rounded distance from the zero frequency ``[M, N]`` int, FFT order."""
    m, n = window
    fy = np.fft.fftfreq(m) * m
    fx = np.fft.fftfreq(n) * n
    return np.rint(np.hypot(fy[:, None], fx[None, :])).astype(np.int64)


def annulus_moments(
    amplitudes: torch.Tensor, valid: torch.Tensor | None = None, chunk_px: int = 1 << 20
) -> AnnulusMoments:
    """Return the count moments of ``amplitudes`` ``[T, M, N]`` (``sqrt N``, FFT order).

    Summed over chunks of about ``chunk_px`` pixels (a few patterns at a time), so the float64
    work arrays stay small whatever the scan.
    """
    window = (int(amplitudes.shape[-2]), int(amplitudes.shape[-1]))
    ring = torch.from_numpy(annulus_index(window)).to(amplitudes.device)
    k = int(ring.max()) + 1
    sums = [torch.zeros(k, dtype=torch.float64, device=amplitudes.device) for _ in range(3)]
    amp_sum = torch.zeros((), dtype=torch.float64, device=amplitudes.device)
    step = max(1, int(chunk_px) // (window[0] * window[1]))
    for s in range(0, int(amplitudes.shape[0]), step):
        amp = amplitudes[s : s + step].detach().to(torch.float64)
        counts = amp.square()
        w = torch.ones_like(counts) if valid is None else valid[s : s + step].to(torch.float64)
        idx = ring.expand_as(counts).reshape(-1)
        for out, x in zip(sums, (w, counts * w, counts.square() * w), strict=True):
            out.index_add_(0, idx, x.reshape(-1))
        amp_sum += (amp * w).sum()
    n, s1, s2 = (x.cpu().numpy() for x in sums)
    return AnnulusMoments(n, s1, s2, float(amp_sum))


def floor_from_moments(moments: AnnulusMoments) -> float:
    """Return the noise floor of the data error from pooled count moments (module docstring)."""
    from scipy.stats import gamma

    if moments.amp_sum <= 0:
        return float("nan")
    total = 0.0
    for n, s1, s2 in zip(moments.n, moments.s1, moments.s2, strict=True):
        if n <= 0 or s1 <= 0:
            continue
        mean = s1 / n
        var_lam = max(s2 / n - mean * mean - mean, 0.0)
        if var_lam <= 1e-12 * mean * mean:
            total += n * float(expected_abs_amplitude_error(mean))
            continue
        shape = mean * mean / var_lam
        lam = gamma.ppf(_QUANTILES, shape, scale=mean / shape)
        total += n * float(expected_abs_amplitude_error(lam).mean())
    return total / moments.amp_sum


def noise_floor(amplitudes: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """Return the data error expected from Poisson noise for measured amplitudes ``sqrt N``."""
    return floor_from_moments(annulus_moments(amplitudes, valid))


def are_counts(
    amplitudes: torch.Tensor, valid: torch.Tensor | None = None, chunk_px: int = 1 << 20
) -> bool:
    """Return True if ``amplitudes**2`` are whole numbers (photon counts) up to float rounding.

    Scaled, background-subtracted or averaged data are not Poisson counts: the floor would
    mean nothing there, so the stall check is skipped. Checked a few patterns at a time.
    """
    m, n = int(amplitudes.shape[-2]), int(amplitudes.shape[-1])
    step = max(1, int(chunk_px) // (m * n))
    for s in range(0, int(amplitudes.shape[0]), step):
        counts = amplitudes[s : s + step].detach().to(torch.float64).square()
        off = (counts - counts.round()).abs() > 1e-3 + 1e-6 * counts
        if valid is not None:
            off &= valid[s : s + step]
        if bool(off.any()):
            return False
    return True


def model_noise_floor(
    model_intensities: torch.Tensor | np.ndarray,
    amplitudes: torch.Tensor | np.ndarray,
) -> float:
    """Return ``sum g(lam) / sum sqrt(N)`` for known means ``lam`` (same layout as ``sqrt N``)."""
    lam = np.asarray(torch.as_tensor(model_intensities).detach().cpu(), dtype=np.float64)
    amp = np.asarray(torch.as_tensor(amplitudes).detach().cpu(), dtype=np.float64)
    return float(expected_abs_amplitude_error(lam).sum() / amp.sum())


@dataclass
class StallCheck:
    """The final data error against the noise floor."""

    data_error: float
    noise_floor: float
    factor: float = STALL_FACTOR

    @property
    def ratio(self) -> float:
        if not (self.noise_floor > 0) or not math.isfinite(self.data_error):
            return float("nan")
        return self.data_error / self.noise_floor

    @property
    def stalled(self) -> bool:
        return bool(self.ratio > self.factor)

    def attrs(self) -> dict[str, float | bool]:
        """Return what ``recon.h5`` records: ``noise_floor``, ``noise_floor_ratio``, ``stalled``."""
        return {
            "noise_floor": float(self.noise_floor),
            "noise_floor_ratio": float(self.ratio),
            "stalled": self.stalled,
        }

    def warning(self) -> str:
        """Return the one-line warning for a stalled run."""
        return (
            f"the final data error {self.data_error:.4g} is {self.ratio:.2f}x the Poisson noise "
            f"floor {self.noise_floor:.4g} of these counts (a converged run ends near or below "
            f"1x): the reconstruction is likely stuck (wrong probe or local minimum); try a "
            f"smaller init.probe_radius_px (a start smaller than the beam), a probe from "
            f"another run (init.probe=file), smaller engine.alpha/beta, or more epochs"
        )


def check_run(
    measurements: Any | Sequence[Any],
    distribution: Any,
    final_error: float,
    log: Any | None = None,
) -> dict[str, float | bool]:
    """Compare a run's final data error with the noise floor of its counts (collective).

    ``measurements``: the patterns of this rank (``Measurements`` or a pattern source; one,
    or one per angle). Every rank calls this (the count moments are summed over ranks); the
    root logs one warning line through ``log`` if the run stalled. Returns the ``recon.h5``
    attributes (``noise_floor`` NaN and ``stalled`` False when the data are not photon counts).
    """
    meas = list(measurements) if isinstance(measurements, Sequence) else [measurements]
    k = max(int(annulus_index(m.window).max()) + 1 for m in meas)
    total = AnnulusMoments(np.zeros(k), np.zeros(k), np.zeros(k), 0.0)
    counts = True
    for m in meas:  # a chunk of patterns at a time (a streamed source: one pass over the file)
        for _, amp, valid in m.amplitude_chunks():
            p = annulus_moments(amp, valid, 1 << 18)  # added at once: no per-chunk object outlives
            total.n[: len(p.n)] += p.n  # the chunk (they would pin its freed work arrays
            total.s1[: len(p.n)] += p.s1  # in the heap)
            total.s2[: len(p.n)] += p.s2
            total.amp_sum += p.amp_sum
            counts = counts and are_counts(amp, valid, 1 << 18)
    summed = distribution.sum_scalars(*total.as_scalars(), float(not counts))
    floor = float("nan")
    if summed[-1] == 0:
        floor = floor_from_moments(AnnulusMoments.from_scalars(tuple(summed[:-1])))
    check = StallCheck(float(final_error), floor)
    if check.stalled and log is not None and distribution.is_root:
        log.warning("%s", check.warning())
    return check.attrs()
