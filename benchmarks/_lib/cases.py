"""The simulated cases of the benchmarks, by name: each is a case of ``conf/case/``.

Every file case is composed and simulated by ``ptyframe.simulate_case`` (the same data, bit
for bit, as ``ptyframe simulate +case=NAME``) and written with ``SimulatedData.write``, so
all tools read the same file. What each case holds is said in its yaml file.

The peer table's cases (``cases``):

``natural_1e6``, ``particles_1e6``, ``particles_1e5``, ``particles_1e4``
    ``conf/case/NAME.yaml``: 625 patterns of 128 x 128 (25 x 25 raster, 16 px step), the
    natural image and the particle film of the ePIE defaults study; 100 sweeps for the natural
    image, 300 for the films.
``lowdose``
    ``conf/case/lowdose.yaml`` (the data of ``+experiment=lowdose``, PINE paper sec. 5.1),
    300 sweeps.

``--quick`` shrinks each case to 64 x 64 windows on a 7 x 7 raster with an 8 px step and
+-1 px jitter, and 20 sweeps (lowdose keeps its geometry): a smoke run of the whole pipeline.

``small_cases``: ``natural`` (``conf/case/natural_small.yaml``) and ``film``
(``conf/case/film_small.yaml``).

In memory (``PtychoDataset``, no file):

``natural_case``
    ``conf/case/engines_table.yaml`` with the dose, seed, phantom and overlap given.
``benchmark_case``
    The ePIE sweep's case: 625 noiseless patterns of 128 x 128 (25 x 25 raster, step 16 px,
    optional uniform jitter), a smooth random object, a soft disc probe with a quadratic
    phase. It is not a ``conf/case`` yet: its object, probe and unscaled intensities have no
    registered components (see the module's ``benchmark_case``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import ptyframe
from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.geometry import ScanGeometry, object_frame
from ptyframe.physics.farfield import FarFieldPtychography
from ptyframe.physics.fft import to_centred
from ptyframe.registry import Registry

#: ``--quick``: 64 x 64 windows, a 7 x 7 raster, 8 px step, +-1 px jitter.
QUICK = ["simulation.window_px=64", "scan.n=7", "scan.step_px=8.0", "scan.jitter_px=1.0"]


@dataclass(frozen=True)
class Case:
    """One benchmark case: the ``conf/case`` it is, its overrides, the table's sweeps."""

    name: str
    sweeps: int
    case: str
    overrides: list[str] = field(default_factory=list)

    def simulate(self, path: Path) -> Path:
        """Write the case's data-exchange file to ``path`` (reused if it exists)."""
        if not path.exists():
            sim = ptyframe.simulate_case(self.case, self.overrides)
            path.parent.mkdir(parents=True, exist_ok=True)
            sim.write(path)
        return path


def cases(quick: bool = False) -> dict[str, Case]:
    """Return the cases by name (``quick``: small windows and few sweeps)."""
    big, small = (20, 20) if quick else (100, 300)
    shrink = QUICK if quick else []
    out = {"natural_1e6": Case("natural_1e6", big, "natural_1e6", shrink)}
    for dose in ("1e6", "1e5", "1e4"):
        name = f"particles_{dose}"
        out[name] = Case(name, small, name, shrink)
    out["lowdose"] = Case("lowdose", small, "lowdose")
    return out


def small_cases(sweeps: int) -> dict[str, Case]:
    """Return ``natural`` (``conf/case/natural_small``) and ``film`` (``conf/case/film_small``),
    each run for ``sweeps``."""
    return {
        "natural": Case("natural", sweeps, "natural_small"),
        "film": Case("film", sweeps, "film_small"),
    }


def natural_case(
    registry: Registry,
    photons: float = 1e6,
    seed: int = 0,
    phantom: str = "natural",
    overlap: float = 0.7,
) -> PtychoDataset:
    """Return the engines table's in-memory dataset (``conf/case/engines_table.yaml``).

    ``seed`` draws the phantom, the scan jitter and the noise; ``phantom`` is any registered
    phantom (``natural``, ``particles``, ...) and ``overlap`` the raster's linear overlap.
    """
    overrides = [
        f"simulation.photons_per_pattern={float(photons)!r}",
        f"simulation.seed={int(seed)}",
        f"phantom={phantom}",
        f"scan.overlap={float(overlap)!r}",
    ]
    sim_data = ptyframe.simulate_case("engines_table", overrides, registry)
    return PtychoDataset(sim_data.geometry, patterns=sim_data.patterns, truth=sim_data.truth)


def benchmark_case(
    m: int = 128, n: int = 25, step: float = 16.0, seed: int = 0, jitter_px: float = 0.0
) -> PtychoDataset:
    """Return the in-memory benchmark dataset (noiseless)."""
    rng = np.random.default_rng(seed)
    g = np.arange(n) * step
    pos = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    pos = pos + rng.uniform(0, jitter_px, pos.shape)
    shape = object_frame(pos, (m, m))
    f = np.fft.fftfreq(shape[0])[:, None] ** 2 + np.fft.fftfreq(shape[1])[None, :] ** 2
    field = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * np.exp(-f / 0.002)))
    field /= np.abs(field).max()
    obj = (0.9 + 0.1 * field) * np.exp(0.5j * field)
    y, x = np.mgrid[:m, :m] - m / 2
    r = np.hypot(y, x) / 32.0
    probe = (np.clip(1.5 - r, 0, 1) * np.exp(1.5j * r**2))[None] * 100.0
    model = FarFieldPtychography()
    inten = []
    for s in range(0, len(pos), 125):
        inten.append(
            model.intensities(
                torch.from_numpy(obj[None]),
                torch.from_numpy(probe),
                torch.from_numpy(pos[s : s + 125]),
            ).float()
        )
    pats = to_centred(torch.cat(inten)).numpy()[None]
    return PtychoDataset(ScanGeometry(pos, (m, m), shape, 8000.0, 20e-9), patterns=pats)
