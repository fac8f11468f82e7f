"""The FRC's floor before and after the windowed-deviation comparison.

For the geometry of each ``conf/experiment`` raster (lowdose/highdose share one; the
overlap_* ones) and a 512^2 particle film, scores estimates against the truth:

- ``constant``: a constant object (no information);
- ``lowpass``: the truth low-passed at 1/4 Nyquist (no information above it);
- ``rphase``: random phase ``exp(i U(-pi, pi))`` (unrelated to the truth);
- ``noise1``: truth + noise of per-ring SNR 1 against the truth (expected sqrt(1/2) = 0.707);
- ``truth``: the truth itself (expected 1).

``old`` is the previous protocol (both images set to vacuum ``1 + 0j`` outside the 1 %-lit
region, FRC read at one ring by interpolation), kept here only for this comparison; ``new``
is ``ptyframe.metrics.frc.frc_against_truth`` with its band values (``FrcResult.band``).
Columns: FRC at 1/4, 1/2, 3/4 Nyquist. Prints the table and writes it as the results page
``docs/results/metric_floor.md`` (``--no-page``: print only).

    python benchmarks/metric_floor.py
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from ptyframe.metrics.align import prepare_pair, windowed_deviation
from ptyframe.metrics.frc import frc, frc_against_truth
from ptyframe.metrics.illumination import illumination_map
from ptyframe.simulation.phantoms import ParticlesConfig, ParticlesPhantom
from ptyframe.simulation.probes import FocusedProbe, FocusedProbeConfig
from ptyframe.simulation.simulate import simulate_dataset

from _lib.results import Stamp, markdown_table, write_page

BANDS = (0.25, 0.5, 0.75)
RASTERS = {"lowdose": (10, 0.7), "overlap_375": (5, 0.375), "overlap_500": (6, 0.5),
           "overlap_625": (8, 0.625), "overlap_750": (12, 0.75)}  # fmt: skip


def experiment_truth(n: int, overlap: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (truth, illumination) of a conf/experiment raster (lowdose.yaml otherwise)."""
    scan = {"name": "raster", "n_y": n, "n_x": n, "overlap": overlap, "jitter_px": 1.0}
    d = simulate_dataset("particles", "focused", scan, window_px=64, pixel_size_m=20e-9,
                         i0_origin=1e2, noise="none", seed=0)  # fmt: skip
    return d.truth.object[0].astype(np.complex128), d.truth.illumination.astype(float)


def film_512() -> tuple[np.ndarray, np.ndarray]:
    """Return a 512^2 particle film and the illumination of 625 positions of a 128 px probe."""
    rng = np.random.default_rng(512)
    cfg = ParticlesConfig(radius_min_px=2.0, radius_max_px=14.0, max_phase_rad=1.0)
    obj = ParticlesPhantom(cfg).generate((512, 512), rng)
    probe = FocusedProbe(FocusedProbeConfig()).generate(128, 20e-9, 1.5498e-10)
    grid = np.arange(25) * 16.0
    pos = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    pos = np.clip(np.round(pos + rng.uniform(-2, 2, pos.shape)) + 2, 0, 512 - 128)
    return obj, illumination_map(probe[None], pos, (512, 512))


def old_bands(est: np.ndarray, truth: np.ndarray, illum: np.ndarray) -> list[float]:
    """The previous protocol: vacuum outside the lit region, FRC at one ring."""
    pair = prepare_pair(est, truth, illum)
    a = np.where(pair.mask, pair.aligned, 1.0 + 0j)
    b = np.where(pair.mask, truth, 1.0 + 0j)
    res = frc(a, b, 20e-9)
    return [res.at(f) for f in BANDS]


def new_bands(est: np.ndarray, truth: np.ndarray, illum: np.ndarray) -> list[float]:
    res, _ = frc_against_truth(est, truth, illum, 20e-9)
    return [res.band(f) for f in BANDS]


def estimates(truth: np.ndarray, illum: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ky, kx = np.fft.fftfreq(truth.shape[0])[:, None], np.fft.fftfreq(truth.shape[1])[None, :]
    radius = np.hypot(ky, kx)
    window = prepare_pair(truth, truth, illum).window
    spec = np.abs(np.fft.fft2(windowed_deviation(truth, window))) ** 2
    ring = np.floor(radius * min(truth.shape) + 0.5).astype(int)
    power = np.bincount(ring.ravel(), spec.ravel()) / np.bincount(ring.ravel())
    white = rng.standard_normal(truth.shape) + 1j * rng.standard_normal(truth.shape)
    amp = np.sqrt(power[ring] / np.mean(window**2) / 2.0)
    noise = np.fft.ifft2(np.fft.fft2(white) * amp) / math.sqrt(truth.size)
    return {
        "constant": np.full(truth.shape, 1.0 + 0j),
        "lowpass": np.fft.ifft2(np.fft.fft2(truth) * (radius <= 0.125)),
        "rphase": np.exp(1j * rng.uniform(-np.pi, np.pi, truth.shape)),
        "noise1": truth + noise,
        "truth": truth.copy(),
    }


HEADER = ["geometry", "estimate", "old 1/4", "old 1/2", "old 3/4", "new 1/4", "new 1/2", "new 3/4"]

ABOUT = """
The floor of the FRC against the truth (`ptyframe.metrics.frc.frc_against_truth`): estimates
that carry no information must score as such. For the geometry of each `conf/experiment`
raster and a 512 x 512 particle film (625 positions of a 128 px probe), five estimates are
scored: a constant (no information; expect 0), the truth low-passed at 1/4 Nyquist (expect ~0
above 1/4 Nyquist), a random phase (unrelated; expect ~0), the truth plus noise of per-ring
SNR 1 (expect sqrt(1/2) = 0.707) and the truth (expect 1). `new` is the metric the runner
records (windowed deviations, band values at 1/4, 1/2 and 3/4 Nyquist); `old` is the
vacuum-substitution protocol read at one ring, kept in the script for this comparison only.
No peer is involved; `tests/test_metrics.py` asserts the new floors on every geometry.
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-page", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    stamp = Stamp()
    cases = {k: (lambda v=v: experiment_truth(*v)) for k, v in RASTERS.items()}
    cases["film_512"] = film_512
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    rows = []
    for name, make in cases.items():
        truth, illum = make()
        for kind, est in estimates(truth, illum).items():
            old, new = old_bands(est, truth, illum), new_bands(est, truth, illum)
            row = [name, kind, *(f"{v:+.3f}" for v in (*old, *new))]
            rows.append(row)
            print("| " + " | ".join(row) + " |", flush=True)
    if not args.no_page:
        path = write_page(
            "metric_floor",
            "The FRC's floor: estimates without information",
            markdown_table(HEADER, rows),
            stamp,
            about=ABOUT,
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
