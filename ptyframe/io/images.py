"""Draw the pictures a person looks at after a run (matplotlib, Agg, imported lazily)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ptyframe.io.results import History


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    _plt().close(fig)
    return path


def _lit_box(illum: np.ndarray | None, shape: tuple[int, int]) -> tuple[slice, slice]:
    if illum is None:
        return slice(0, shape[0]), slice(0, shape[1])
    lit = illum >= 0.01 * float(illum.max())
    ys, xs = np.nonzero(lit)
    if ys.size == 0:
        return slice(0, shape[0]), slice(0, shape[1])
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def object_images(
    obj: np.ndarray, out_dir: Path, pixel_size_m: float, illumination: np.ndarray | None = None
) -> list[Path]:
    """Write ``object_amplitude.png`` and ``object_phase.png`` of ``obj`` ``[Ny, Nx]``.

    The view is cropped to the region lit by >= 1 % of the maximum illumination (when known);
    the phase is shown after removing the mean phase of that region.
    """
    plt = _plt()
    sy, sx = _lit_box(illumination, obj.shape)
    crop = obj[sy, sx]
    phase = np.angle(crop * np.exp(-1j * np.angle(np.mean(crop))))
    extent_um = (0, crop.shape[1] * pixel_size_m * 1e6, crop.shape[0] * pixel_size_m * 1e6, 0)
    paths = []
    for name, img, cmap, label in (
        ("object_amplitude.png", np.abs(crop), "gray", "amplitude"),
        ("object_phase.png", phase, "twilight_shifted", "phase (rad)"),
    ):
        fig, ax = plt.subplots(figsize=(5.5, 5))
        im = ax.imshow(img, cmap=cmap, extent=extent_um)
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("y (µm)")
        ax.set_title(f"object {label}")
        fig.colorbar(im, ax=ax, shrink=0.8)
        paths.append(_save(fig, out_dir / name))
    return paths


def probe_image(probe: np.ndarray, out_dir: Path) -> Path:
    """Write ``probe.png``: amplitude and phase of every mode ``[K, M, M]`` with its power."""
    plt = _plt()
    k = probe.shape[0]
    power = np.sum(np.abs(probe) ** 2, axis=(-2, -1))
    fig, axes = plt.subplots(2, k, figsize=(3.2 * k, 6.2), squeeze=False)
    for i in range(k):
        axes[0, i].imshow(np.abs(probe[i]), cmap="magma")
        axes[0, i].set_title(f"mode {i} amplitude ({100 * power[i] / power.sum():.1f} %)")
        axes[1, i].imshow(np.angle(probe[i]), cmap="twilight_shifted", vmin=-math.pi, vmax=math.pi)
        axes[1, i].set_title(f"mode {i} phase")
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    return _save(fig, out_dir / "probe.png")


def convergence_image(history: History, out_dir: Path) -> Path:
    """Write ``convergence.png``: the data error per epoch on a log scale."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    err = np.asarray(history.columns.get("data_error", []), dtype=float)
    ax.semilogy(np.asarray(history.epochs) + 1, err, "-", lw=1.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("data error  Σ| |Ψ| − √I | / Σ√I")
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, out_dir / "convergence.png")


def metrics_image(history: History, out_dir: Path) -> Path | None:
    """Write ``metrics.png`` (FRC at ½ and ¾ Nyquist, NRMSE per epoch), if any were computed."""
    keys = [k for k in ("frc_half_nyquist", "frc_3q_nyquist", "nrmse") if k in history.columns]
    if not keys:
        return None
    plt = _plt()
    epochs = np.asarray(history.epochs) + 1
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in keys:
        vals = np.asarray(history.columns[key], dtype=float)
        ok = np.isfinite(vals)
        ax.plot(epochs[ok], vals[ok], "o-", ms=3, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("metric against the ground truth")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, out_dir / "metrics.png")


def frc_image(
    freq_per_m: np.ndarray,
    frc: np.ndarray,
    half_bit: np.ndarray,
    nyquist_per_m: float,
    out_dir: Path,
) -> Path:
    """Write ``frc.png``: the final FRC curve against the half-bit threshold."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.asarray(freq_per_m) / nyquist_per_m
    ax.plot(x, frc, label="FRC")
    ax.plot(x, half_bit, "--", label="half-bit")
    ax.axhline(1 / 7, color="gray", ls=":", label="1/7")
    ax.set_xlabel("spatial frequency / Nyquist")
    ax.set_ylabel("FRC")
    ax.set_ylim(-0.1, 1.05)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, out_dir / "frc.png")
