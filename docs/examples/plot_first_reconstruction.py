"""
A first reconstruction
======================

Simulate a small far-field scan of a particle film with its ground truth, reconstruct it
with ePIE, and compare the object with the truth. This is what ``make demo`` does from the
command line (``ptyframe simulate``, then ``ptyframe reconstruct``), here from Python and
smaller, so that it runs each time the manual is built.
"""

# %%
# Simulate: a 64 x 64 detector, a focused probe scanned over an 8 x 8 raster at 70 %
# overlap, Poisson noise at 1e6 photons per pattern. ``simulate_dataset`` takes registered
# components by name (the phantom ``particles``, the probe ``focused``, the scan ``raster``)
# and keeps the truth beside the patterns.
import matplotlib.pyplot as plt
import numpy as np

import ptyframe
from ptyframe.data.dataset import PtychoDataset
from ptyframe.metrics.frc import frc_against_truth
from ptyframe.simulation.simulate import simulate_dataset

sim = simulate_dataset(
    "particles",
    "focused",
    {"name": "raster", "n_y": 8, "n_x": 8, "overlap": 0.7},
    window_px=64,
    photons_per_pattern=1e6,
    noise="poisson",
    seed=0,
)
data = PtychoDataset(sim.geometry, patterns=sim.patterns, truth=sim.truth)
print("patterns", sim.patterns.shape, "object", sim.truth.object.shape)

# %%
# Reconstruct with ePIE at its defaults (a disk probe, a vacuum object) for 200 epochs.
# ``ptyframe.reconstruct`` is the whole run without Hydra: the same engines, callbacks and
# checks as ``ptyframe reconstruct`` on the command line.
result = ptyframe.reconstruct(data, "epie", epochs=200, seed=0)
print(result.status, "data error", f"{result.history.columns['data_error'][-1]:.4f}")

# %%
# Compare with the truth: the FRC of ``ptyframe.metrics`` aligns the two objects (scale,
# phase, sub-pixel shift) over the illuminated region; a constant object would score 0.
frc, pair = frc_against_truth(
    result.object[0], sim.truth.object[0], sim.truth.illumination, sim.geometry.pixel_size_m
)
print("FRC at 1/4, 1/2, 3/4 Nyquist:", [round(frc.band(f), 2) for f in (0.25, 0.5, 0.75)])

fig, ax = plt.subplots(1, 3, figsize=(10, 3.4))
lit = sim.truth.illumination > 0.01 * sim.truth.illumination.max()
for a, img, title in (
    (ax[0], np.angle(sim.truth.object[0]), "truth: phase"),
    (ax[1], np.where(lit, np.angle(pair.aligned), np.nan), "ePIE, 200 epochs: phase"),
):
    im = a.imshow(img, cmap="gray")
    a.set_title(title)
    a.axis("off")
    fig.colorbar(im, ax=a, shrink=0.8, label="rad")
ax[2].plot(result.history.columns["data_error"])
ax[2].set_xlabel("epoch")
ax[2].set_ylabel("data error")
ax[2].set_title("convergence")
fig.tight_layout()
