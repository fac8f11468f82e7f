"""The cone-beam simulator against a plain numpy simulation in the laboratory frame.

The simulator works in the frame of the Fresnel scaling theorem (object pixel ``p / M``,
distance ``z2 / M``, the beam without its curvature). The reference here does what the
beamline does, with numpy only: the beam diverges from a point ``z1`` upstream (the sphere
``exp(i pi r^2 / (lambda z1))`` times the same slowly varying envelope), passes the sample and
travels ``z2`` to the detector, all on a grid four times finer than the object pixel (so the
sphere is sampled), and the detector samples the field every ``M`` object pixels. Object and
envelope are band limited, so both simulations describe the same continuous fields.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from ptyframe.simulation.nearfield import ConeBeamConfig, ConeBeamSimulator

LAM, DX, Z1, Z2, M_WIN, Q = 1e-10, 2e-7, 0.01, 0.03, 24, 4


def band_limited(shape: tuple[int, int], seed: int, cutoff: float) -> np.ndarray:
    """Return a complex random field ``[H, W]`` with no frequency above ``cutoff`` cycles/px."""
    rng = np.random.default_rng(seed)
    spec = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    ky, kx = np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None, :]
    spec[np.hypot(ky, kx) > cutoff] = 0
    f = np.fft.ifft2(spec)
    return f / np.abs(f).max()


def upsample(x: np.ndarray, q: int) -> np.ndarray:
    """Fourier-interpolate a periodic band-limited field ``[W, W]`` onto a ``q`` times finer grid,
    sample ``i q`` of the result being sample ``i`` of ``x``."""
    w = x.shape[0]
    spec = np.fft.fftshift(np.fft.fft2(x))
    big = np.zeros((w * q, w * q), dtype=complex)
    o = (w * q - w) // 2
    big[o : o + w, o : o + w] = spec
    return np.fft.ifft2(np.fft.ifftshift(big)) * q * q


def lab_hologram(window: np.ndarray, envelope: np.ndarray, n_lab: int) -> np.ndarray:
    """Return the detector intensity ``[n_lab, n_lab]`` of one exit window (numpy, lab frame).

    ``window`` and ``envelope`` ``[W, W]`` are on the object grid, the beam axis at ``W // 2``.
    """
    w = window.shape[0]
    fine = upsample(window * envelope, Q)  # [W q, W q], axis at (W // 2) q
    dxl = DX / Q
    field = np.zeros((n_lab, n_lab), dtype=complex)
    o = n_lab // 2 - (w // 2) * Q
    field[o : o + w * Q, o : o + w * Q] = fine
    c = (np.arange(n_lab) - n_lab // 2) * dxl
    field *= np.exp(1j * math.pi * (c[:, None] ** 2 + c[None, :] ** 2) / (LAM * Z1))
    nu = np.fft.fftfreq(n_lab, dxl)
    h = np.exp(-1j * math.pi * LAM * Z2 * (nu[:, None] ** 2 + nu[None, :] ** 2))
    return np.abs(np.fft.ifft2(np.fft.fft2(field) * h)) ** 2


def test_scaled_frame_holograms_equal_the_laboratory_ones() -> None:
    """Fresnel scaling theorem, end to end: ``M^2 |U_det(M x)|^2`` (lab, numpy) equals the
    simulator's hologram at ``x`` to < 1e-3 relative, for two scan positions: catches a wrong
    magnification, effective distance, detector order or registration of the frames."""
    mag = (Z1 + Z2) / Z1
    energy = 1.239841984e-6 / LAM
    cfg = ConeBeamConfig(
        energy_ev=energy,
        focus_to_sample_m=Z1,
        detector_distance_m=Z2,
        detector_pixel_m=DX * mag,
        window_px=M_WIN,
        noise="none",
        probe_modes=1,
        stripes_rms=0.0,
    )
    sim = ConeBeamSimulator(cfg)
    b = sim.margin_px
    w = M_WIN + 2 * b
    assert math.isclose(cfg.pixel_size_m, DX) and math.isclose(cfg.distance_m, Z1 * Z2 / (Z1 + Z2))
    y = np.arange(w) - w // 2
    envelope = np.exp(-(y[:, None] ** 2 + y[None, :] ** 2) / (2 * 10.0**2)).astype(complex)
    obj = 1 + 0.3 * band_limited((w + 8, w + 8), 0, 1 / 16)
    corners = np.array([[b + 0.0, b + 0.0], [b + 5.0, b + 3.0]])
    holo, _ = sim.holograms(obj, envelope[None], corners)
    n_lab = 2048
    for r, (cy, cx) in enumerate(corners.astype(int)):
        lab = lab_hologram(obj[cy - b : cy - b + w, cx - b : cx - b + w], envelope, n_lab)
        k = np.arange(b, b + M_WIN) - w // 2  # detector pixels relative to the axis
        idx = n_lab // 2 + int(round(mag)) * Q * k
        ref = mag**2 * lab[np.ix_(idx, idx)]
        err = np.linalg.norm(holo[r] - ref) / np.linalg.norm(ref)
        assert err < 1e-3, (r, err)


def test_simulated_scan_is_what_the_file_says(tmp_path) -> None:
    """The run's frames, counts and truth: the mean counts per frame near the dose, dead
    pixels zero and masked, translations in metres on the object pixel of the scaled frame."""
    import h5py

    import ptyframe

    reg = ptyframe.registry()
    sim = reg.build(
        "simulation",
        {"name": "conebeam", "window_px": 48, "photons_per_frame": 1e6, "dead_fraction": 0.01},
    )
    probe = reg.build(
        "probe", {"name": "kb", "aperture_m": [1.4e-3, 1.4e-3], "focal_lengths_m": [0.25, 0.25]}
    )
    data = sim.run(
        reg.build("phantom", "siemens_star"),
        probe,
        reg.build("scan", {"name": "fermat", "n_points": 20}),
    )
    assert abs(data.frames.sum(axis=(1, 2)).mean() / 1e6 - 1) < 0.05
    assert data.mask.sum() > 0 and np.all(data.frames[:, data.mask.astype(bool)] == 0)
    data.write(tmp_path / "s.cxi")
    with h5py.File(tmp_path / "s.cxi") as f:
        t = f["entry_1/sample_1/geometry_1/translation"][()]
        assert f["entry_1/instrument_1/detector_1/data"].dtype == np.uint32
        assert math.isclose(f["entry_1/instrument_1/detector_1/distance"][()], 1.12)
    half = np.array([24.0, 24.0])
    centres = (data.geometry.positions_px + half) * data.geometry.pixel_size_m
    assert np.allclose(t[:, :2], centres[:, ::-1])
    ns = SimpleNamespace(**{"truth": data.truth})
    assert ns.truth.object.shape[1:] == data.geometry.object_shape
