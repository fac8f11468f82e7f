"""Draw the pictures a person looks at after a run (matplotlib, Agg, imported lazily).

Every image has a colour bar with its quantity and unit and physical axes (µm); a cropped
view says what it was cropped to. Colour maps follow what the values are:

* amplitude: grey, over the 1st-99th percentile of the shown region (the range is written
  on the colour bar, so a stretched weak contrast is not mistaken for a strong one);
* phase of an object, referenced to the mean of the lit region: a cyclic map only when the
  values wrap (a noticeable share of pixels within 10 % of +-pi), shown on [-pi, pi];
  otherwise a sequential map over its own range, so a feature at -0.8 rad does not look
  like the 0 rad background (a cyclic map on a narrow range folds them together);
* probe phase: always wrapped (cyclic on [-pi, pi]), shown only where the probe carries
  power (>= 5 % of its peak amplitude).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ptyframe.io.results import History

#: Share of pixels within 10 % of +-pi above which a phase map is treated as wrapped.
WRAPPED_SHARE = 0.01
#: Readable names of the history columns the metrics write.
LABELS = {
    "frc_quarter_nyquist": "FRC at 1/4 Nyquist",
    "frc_half_nyquist": "FRC at 1/2 Nyquist",
    "frc_3q_nyquist": "FRC at 3/4 Nyquist",
    "nrmse": "NRMSE",
    "ssim_amplitude": "SSIM of the amplitude",
    "ssim_phase": "SSIM of the phase",
    "data_error": "data error",
    "validation_error": "validation error",
}


def pyplot():
    """Return ``matplotlib.pyplot`` on the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` (PNG, through a temporary name), close it, return ``path``."""
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    pyplot().close(fig)
    return path


def label(key: str) -> str:
    """Return a readable name for a history column ``key``."""
    return LABELS.get(key, key.replace("_", " "))


def _lit_box(illum: np.ndarray | None, shape: tuple[int, int]) -> tuple[slice, slice]:
    if illum is None:
        return slice(0, shape[0]), slice(0, shape[1])
    lit = illum >= 0.01 * float(illum.max())
    ys, xs = np.nonzero(lit)
    if ys.size == 0:
        return slice(0, shape[0]), slice(0, shape[1])
    return slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)


def _extent_um(sy: slice, sx: slice, pixel_size_m: float) -> tuple[float, float, float, float]:
    """Return the ``imshow`` extent (left, right, bottom, top) in µm of the pixels ``sy, sx``."""
    um = pixel_size_m * 1e6
    return (sx.start * um, sx.stop * um, sy.stop * um, sy.start * um)


def _percentiles(x: np.ndarray, lo: float = 1.0, hi: float = 99.0) -> tuple[float, float]:
    a, b = (float(v) for v in np.percentile(np.asarray(x, dtype=float), [lo, hi]))
    if not b > a:
        a, b = a - 0.5 * max(abs(a), 1e-6), b + 0.5 * max(abs(b), 1e-6)
    return a, b


def is_wrapped(phase: np.ndarray) -> bool:
    """Return whether a phase map ``[H, W]`` in (-pi, pi] wraps (see the module docstring)."""
    near_pi = np.abs(phase) > 0.9 * np.pi
    return bool(np.mean(near_pi) > WRAPPED_SHARE)


def phase_view(phase: np.ndarray) -> dict[str, Any]:
    """Return ``imshow`` keywords and a colour-bar label suited to the phase map ``phase``."""
    if is_wrapped(phase):
        return {
            "kw": {"cmap": "twilight_shifted", "vmin": -np.pi, "vmax": np.pi},
            "label": "phase (rad), wrapped to [-π, π]",
        }
    lo, hi = _percentiles(phase)
    return {
        "kw": {"cmap": "viridis", "vmin": lo, "vmax": hi},
        "label": "phase (rad), 1st-99th percentile",
    }


def _amplitude_view(amp: np.ndarray) -> dict[str, Any]:
    lo, hi = _percentiles(amp)
    return {
        "kw": {"cmap": "gray", "vmin": lo, "vmax": hi},
        "label": f"amplitude, 1st-99th percentile ({lo:.3g} to {hi:.3g})",
    }


def _axes_um(ax: Any, title: str) -> None:
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.set_title(title, fontsize=10)


def object_images(
    obj: np.ndarray, out_dir: Path, pixel_size_m: float, illumination: np.ndarray | None = None
) -> list[Path]:
    """Write ``object_amplitude.png`` and ``object_phase.png`` of ``obj`` ``[Ny, Nx]``.

    The view is cropped to the bounding box of the region lit by >= 1 % of the maximum
    illumination (when known), and the title says so with the crop in pixels; axes are the
    object frame's coordinates in µm. The phase is referenced to the mean of that region.
    """
    plt = pyplot()
    sy, sx = _lit_box(illumination, obj.shape)
    crop = obj[sy, sx]
    phase = np.angle(crop * np.exp(-1j * np.angle(np.mean(crop))))
    extent = _extent_um(sy, sx, pixel_size_m)
    ny, nx = obj.shape
    cropped = (sy.stop - sy.start, sx.stop - sx.start) != (ny, nx)
    where = (
        f"lit region (>= 1 % of peak illumination): rows {sy.start}-{sy.stop - 1}, "
        f"columns {sx.start}-{sx.stop - 1} of {ny}x{nx}"
        if cropped
        else f"whole object, {ny}x{nx} px"
    )
    paths = []
    for name, img, view, what in (
        ("object_amplitude.png", np.abs(crop), _amplitude_view(np.abs(crop)), "amplitude"),
        ("object_phase.png", phase, phase_view(phase), "phase (mean of the shown region = 0)"),
    ):
        fig, ax = plt.subplots(figsize=(6, 5.4))
        im = ax.imshow(img, extent=extent, interpolation="nearest", **view["kw"])
        _axes_um(ax, f"reconstructed object {what}\n{where}; pixel {pixel_size_m * 1e9:.3g} nm")
        fig.colorbar(im, ax=ax, shrink=0.8, label=view["label"])
        paths.append(save_figure(fig, out_dir / name))
    return paths


def probe_panels(
    fig: Any, axes: Any, probe: np.ndarray, pixel_size_m: float | None, what: str = "probe"
) -> None:
    """Draw amplitude (row 0) and phase (row 1) of every mode ``[K, M, M]`` into ``axes``."""
    k, m = probe.shape[0], probe.shape[-1]
    power = np.sum(np.abs(probe) ** 2, axis=(-2, -1))
    total = float(power.sum()) or 1.0
    full = slice(0, m)
    extent = _extent_um(full, full, pixel_size_m) if pixel_size_m else None
    unit = "µm" if pixel_size_m else "px"
    for i in range(k):
        amp = np.abs(probe[i])
        im = axes[0, i].imshow(amp, cmap="magma", extent=extent, vmin=0)
        fig.colorbar(im, ax=axes[0, i], shrink=0.8, label="amplitude (√photons per pixel)")
        share = f" ({100 * power[i] / total:.1f} % of the power)" if k > 1 else ""
        axes[0, i].set_title(f"{what} mode {i} amplitude{share}", fontsize=9)
        phase = np.where(amp >= 0.05 * float(amp.max() or 1.0), np.angle(probe[i]), np.nan)
        im = axes[1, i].imshow(
            phase, cmap="twilight_shifted", vmin=-np.pi, vmax=np.pi, extent=extent
        )
        fig.colorbar(im, ax=axes[1, i], shrink=0.8, label="phase (rad), wrapped")
        axes[1, i].set_title(f"{what} mode {i} phase (amplitude >= 5 % of peak)", fontsize=9)
        for ax in axes[:, i]:
            ax.set_xlabel(f"x ({unit})")
            ax.set_ylabel(f"y ({unit})")


def probe_image(
    probe: np.ndarray,
    out_dir: Path,
    pixel_size_m: float | None = None,
    name: str = "probe.png",
    what: str = "reconstructed probe",
) -> Path:
    """Write ``name``: amplitude and phase of every mode ``[K, M, M]`` with its power."""
    plt = pyplot()
    k = probe.shape[0]
    fig, axes = plt.subplots(2, k, figsize=(4.8 * k, 8.6), squeeze=False)
    fig.subplots_adjust(hspace=0.35)
    probe_panels(fig, axes, probe, pixel_size_m, what)
    return save_figure(fig, out_dir / name)


def convergence_image(history: History, out_dir: Path) -> Path:
    """Write ``convergence.png``: the data error per epoch on a log scale."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.asarray(history.epochs) + 1
    for key, style in (("data_error", "-"), ("validation_error", "--")):
        if key in history.columns:
            vals = np.asarray(history.columns[key], dtype=float)
            ok = np.isfinite(vals)
            ax.semilogy(epochs[ok], vals[ok], style, lw=1.5, label=label(key))
    ax.set_xlabel("epoch")
    ax.set_ylabel("data error  Σ| |Ψ| − √I | / Σ√I")
    ax.set_title("convergence: misfit to the measured patterns", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return save_figure(fig, out_dir / "convergence.png")


def metrics_image(history: History, out_dir: Path) -> Path | None:
    """Write ``metrics.png`` (FRC bands, NRMSE, SSIM per epoch), if any were computed."""
    keys = [k for k in LABELS if k in history.columns and k not in ("data_error",)]
    keys = [k for k in keys if k != "validation_error"]
    if not keys:
        return None
    plt = pyplot()
    epochs = np.asarray(history.epochs) + 1
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for key in keys:
        vals = np.asarray(history.columns[key], dtype=float)
        ok = np.isfinite(vals)
        ax.plot(epochs[ok], vals[ok], "o-", ms=3, label=label(key))
    ax.set_xlabel("epoch")
    ax.set_ylabel("score against the ground truth")
    ax.set_title("reconstruction against the simulated ground truth", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out_dir / "metrics.png")


def frc_image(
    freq_per_m: np.ndarray,
    frc: np.ndarray,
    half_bit: np.ndarray,
    nyquist_per_m: float,
    out_dir: Path,
    resolution_m: float | None = None,
    against: str = "the ground truth",
    name: str = "frc.png",
    first_ring: int = 0,
    title: str = "",
) -> Path:
    """Write ``frc.png``: the FRC curve against the half-bit threshold, with the resolution.

    ``resolution_m`` is the full period at the first half-bit crossing (None: the curve stays
    above the threshold up to Nyquist, i.e. the resolution is the pixel's, <= 2 pixels).
    Rings below ``first_ring`` (e.g. inside a window's spectral width) are not drawn;
    ``title`` is put above the standard one.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    j = max(int(first_ring), 0)
    x = (np.asarray(freq_per_m) / nyquist_per_m)[j:]
    ax.plot(x, np.asarray(frc)[j:], label=f"FRC against {against}")
    ax.plot(x, np.asarray(half_bit)[j:], "--", label="1/2-bit threshold")
    ax.axhline(1 / 7, color="gray", ls=":", label="1/7")
    pixel_nm = 0.5 / nyquist_per_m * 1e9
    if resolution_m is not None:
        ax.axvline(1.0 / resolution_m / nyquist_per_m, color="k", lw=0.8)
        res = f"resolution (1/2-bit) {resolution_m * 1e9:.3g} nm"
    else:
        res = f"above the 1/2-bit threshold up to Nyquist (<= {2 * pixel_nm:.3g} nm)"
    head = f"{title}\n" if title else ""
    ax.set_title(f"{head}FRC against {against}: {res}\npixel {pixel_nm:.3g} nm", fontsize=10)
    ax.set_xlabel(f"spatial frequency / Nyquist (Nyquist = 1 / {2 * pixel_nm:.3g} nm)")
    ax.set_ylabel("FRC")
    ax.set_ylim(-0.1, 1.05)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out_dir / name)


def truth_preview(
    obj: np.ndarray, probe: np.ndarray, positions_px: np.ndarray, pixel_size_m: float, path: Path
) -> Path:
    """Write the preview of a simulated dataset: true amplitude, phase and probe with axes."""
    plt = pyplot()
    ny, nx = obj.shape
    full_y, full_x = slice(0, ny), slice(0, nx)
    extent = _extent_um(full_y, full_x, pixel_size_m)
    um = pixel_size_m * 1e6
    m = probe.shape[-1]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    view = _amplitude_view(np.abs(obj))
    im = axes[0].imshow(np.abs(obj), extent=extent, **view["kw"])
    centres = (np.asarray(positions_px) + m / 2) * um
    axes[0].plot(centres[:, 1], centres[:, 0], "r.", ms=2)
    fig.colorbar(im, ax=axes[0], shrink=0.8, label=view["label"])
    _axes_um(axes[0], f"true amplitude; red: {len(centres)} probe centres")
    phase = np.angle(obj * np.exp(-1j * np.angle(np.mean(obj))))
    view = phase_view(phase)
    im = axes[1].imshow(phase, extent=extent, **view["kw"])
    fig.colorbar(im, ax=axes[1], shrink=0.8, label=view["label"])
    _axes_um(axes[1], f"true phase (mean = 0); {ny}x{nx} px of {pixel_size_m * 1e9:.3g} nm")
    pext = _extent_um(slice(0, m), slice(0, m), pixel_size_m)
    im = axes[2].imshow(np.abs(probe), cmap="magma", vmin=0, extent=pext)
    fig.colorbar(im, ax=axes[2], shrink=0.8, label="amplitude (√photons per pixel)")
    _axes_um(axes[2], f"true probe amplitude ({m}x{m} px)")
    return save_figure(fig, path)
