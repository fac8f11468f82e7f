"""The thick-sample (multislice) simulator against a plain numpy multislice chain."""

from __future__ import annotations

import numpy as np

import ptyframe


def numpy_patterns(
    obj: np.ndarray, probe: np.ndarray, pos: np.ndarray, gap: float, dx: float, lam: float
) -> np.ndarray:
    """Return centred far-field patterns of ``probe`` through two slices (numpy)."""
    m = probe.shape[-1]
    nu = np.fft.fftfreq(m, dx)
    h = np.exp(-1j * np.pi * lam * gap * (nu[:, None] ** 2 + nu[None, :] ** 2))
    out = []
    for y, x in pos.astype(int):
        psi = obj[0, y : y + m, x : x + m] * probe
        psi = np.fft.ifft2(np.fft.fft2(psi) * h) * obj[1, y : y + m, x : x + m]
        out.append(np.abs(np.fft.fftshift(np.fft.fft2(psi, norm="ortho"), axes=(-2, -1))) ** 2)
    return np.stack(out)


def test_two_slices_match_numpy_and_differ_from_one() -> None:
    """Patterns equal the numpy chain (catches a wrong gap, order or sign), and differ from
    the pure projection ``O_1 O_2`` by more than the dose's noise: the gap is visible."""
    reg = ptyframe.registry()
    sim = reg.build(
        "simulation",
        {"name": "multislice", "window_px": 48, "noise": "none", "photons_per_pattern": 1e6},
    )
    d = sim.run(
        reg.build("phantom", "particles"),
        reg.build("probe", "focused"),
        reg.build("scan", {"name": "raster", "n_y": 3, "n_x": 3, "integer_positions": True}),
    )
    c, g, t = sim.config, d.geometry, d.truth
    obj, probe = t.object.astype(np.complex128), t.probe[0].astype(np.complex128)
    ref = numpy_patterns(obj, probe, g.positions_px, c.gap_m, c.pixel_size_m, c.wavelength_m)
    err = np.linalg.norm(d.patterns[0] - ref) / np.linalg.norm(ref)
    assert err < 1e-5, err
    flat = numpy_patterns(obj, probe, g.positions_px, 0.0, c.pixel_size_m, c.wavelength_m)
    diff = np.abs(np.sqrt(flat) - np.sqrt(ref)).sum() / np.sqrt(ref).sum()
    assert diff > 0.03, diff  # the one-slice model misses the gap by more than a rounding
