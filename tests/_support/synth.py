"""Synthesise tiny far-field ptychography datasets in tests (fixed seeds, no files needed).

Tiny in-test data, not a named case: a 32 x 32 window on a 7 x 7 raster simulates in
milliseconds and the tests' tolerances were set on exactly these bits (smooth object, soft
probe, optional probe modes and Poisson noise, Fourier intensities from ptyframe's own
``FarFieldPtychography``). The named cases that users and benchmarks refer to live in
``conf/case/`` and are simulated by ``ptyframe.simulate_case`` (one simulator,
``ptyframe.simulation``); a test that needs one of them uses that loader
(``tests/unit/test_halfset.py``, ``tests/engines/test_pine_claim.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.exchange import Truth
from ptyframe.data.geometry import ScanGeometry, object_frame
from ptyframe.physics.farfield import FarFieldPtychography
from ptyframe.physics.fft import to_centred


def smooth_object(
    shape: tuple[int, int], seed: int = 0, phase_rad: float = 0.6, amp_contrast: float = 0.3
) -> np.ndarray:
    """Return a smooth random complex transmission ``[Ny, Nx]`` (|O| <= 1)."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    filt = np.exp(-(fy**2 + fx**2) / (2 * 0.06**2))

    def field() -> np.ndarray:
        f = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * filt))
        return (f - f.min()) / (f.max() - f.min())

    return (1 - amp_contrast * field()) * np.exp(1j * phase_rad * (field() - 0.5))


def focused_probe(m: int, diameter_frac: float = 0.35, defocus: float = 2.0) -> np.ndarray:
    """Return a soft-edged probe ``[m, m]`` with a quadratic phase (complex128)."""
    y, x = np.mgrid[:m, :m] - m / 2
    r = np.hypot(y, x) / (diameter_frac * m / 2)
    amp = 0.5 * (1 + np.cos(np.pi * np.clip(r - 0.5, 0, 1) / 1.0)) * (r < 1.5)
    return amp * np.exp(1j * defocus * r**2)


def raster(n: int, step: float, jitter: float = 0.0, seed: int = 1) -> np.ndarray:
    """Return ``[n*n, 2]`` raster positions starting at 1 px, with uniform jitter."""
    rng = np.random.default_rng(seed)
    g = np.arange(n) * step
    pos = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2).astype(np.float64)
    pos += rng.uniform(-jitter, jitter, pos.shape) + jitter + 1
    return pos


def make_dataset(
    m: int = 32,
    n: int = 7,
    step: float = 6.0,
    photons: float | None = None,
    jitter: float = 0.0,
    seed: int = 0,
    modes: int = 1,
) -> PtychoDataset:
    """Return an in-memory dataset with truth; noiseless unless ``photons`` is given."""
    pos = raster(n, step, jitter, seed + 1)
    shape = object_frame(pos, (m, m))
    obj = smooth_object(shape, seed)[None]
    p0 = focused_probe(m)
    probes = [p0]
    for k in range(1, modes):
        probes.append(0.4 * p0 * np.exp(2j * np.pi * k * np.arange(m)[None, :] / m))
    probe = np.stack(probes) * 30.0
    model = FarFieldPtychography()
    inten = model.intensities(
        torch.from_numpy(obj), torch.from_numpy(probe), torch.from_numpy(pos)
    ).numpy()
    if photons is not None:
        scale = photons / inten.sum(axis=(-2, -1)).mean()
        probe = probe * np.sqrt(scale)
        inten = np.random.default_rng(seed + 7).poisson(inten * scale).astype(np.float64)
    pats = to_centred(torch.from_numpy(inten)).numpy().astype(np.float32)[None]
    geom = ScanGeometry(pos, (m, m), shape, 8000.0, 20e-9)
    return PtychoDataset(
        geom, patterns=pats, truth=Truth(obj.astype(np.complex64), probe.astype(np.complex64))
    )


def illumination(ds: PtychoDataset) -> np.ndarray:
    """Return the true illumination map (sum of the true probe intensity over positions)."""
    truth = ds.truth
    assert truth is not None
    inten = np.sum(np.abs(truth.probe) ** 2, axis=0)
    m = inten.shape[0]
    out = np.zeros(ds.geometry.object_shape)
    for y, x in np.floor(ds.geometry.positions_px).astype(int):
        out[y : y + m, x : x + m] += inten
    return out


def aligned_nrmse(est: np.ndarray, truth: np.ndarray, mask: np.ndarray, ramp: bool = True) -> float:
    """Return ``||g * est' - truth|| / ||truth||`` on ``mask`` after alignment.

    Alignment removes what blind ptychography cannot determine: a complex scale ``g``, a
    whole-pixel shift (|s| <= 3, from probe centring) and, if ``ramp``, a linear phase ramp
    (object ramp and opposite probe ramp give the same data).
    """
    yy, xx = np.mgrid[: truth.shape[0], : truth.shape[1]]
    best = np.inf
    for sy in range(-3, 4):
        for sx in range(-3, 4):
            e_full = np.roll(est, (sy, sx), axis=(0, 1))
            if ramp:
                r = e_full[mask] * np.conj(truth[mask])
                ph = np.angle(r / np.mean(r))
                a = np.stack([yy[mask], xx[mask], np.ones(mask.sum())], 1)
                c = np.linalg.lstsq(a, ph, rcond=None)[0]
                e_full = e_full * np.exp(-1j * (c[0] * yy + c[1] * xx))
            e, t = e_full[mask], truth[mask]
            g = np.vdot(e, t) / np.vdot(e, e)
            best = min(best, float(np.linalg.norm(g * e - t) / np.linalg.norm(t)))
    return best
