"""Score a tool's result against the truth, the same way for every tool, and detect failures.

Scorer: the runner's own ``frc`` and ``nrmse`` metric components with their defaults
(``ptyframe.metrics.plugin``: one ``prepare_pair`` -- scale and phase, sub-pixel alignment,
the region lit above 1 % of the peak illumination -- then the FRC band values at 1/4, 1/2 and
3/4 Nyquist and the NRMSE), i.e. the numbers ``ptyframe reconstruct`` writes to recon.h5.
The shift the alignment removed is reported too.

A result is FAILED (with the reason in the table) when
* the runner raised or timed out (the last line of its error output),
* the object holds NaN/Inf,
* it scores like a constant: its NRMSE is at least ``CONSTANT_FRACTION`` of the NRMSE that an
  object of ones gets from the same scorer on the same case, or its FRC at both 1/4 and 1/2
  Nyquist is within ``CONSTANT_FRC_MARGIN`` of that object's (no structure at either band: an
  NRMSE just under the fraction no longer passes a result that holds no image),
* it is a truth-probe mapping check and the aligned shift exceeds ``MAPPING_TOLERANCE_PX``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ptyframe.metrics.plugin import FrcMetric, FrcMetricConfig, NrmseMetric, NrmseMetricConfig

#: A result whose NRMSE is >= this fraction of a constant object's is no reconstruction.
CONSTANT_FRACTION = 0.95
#: ... and so is one whose FRC at 1/4 and at 1/2 Nyquist is at most a constant's plus this.
CONSTANT_FRC_MARGIN = 0.05
#: A truth-probe run must align within this many pixels (per axis) of the truth.
MAPPING_TOLERANCE_PX = 0.25
BANDS = (0.25, 0.5, 0.75)
FRC_KEYS = ("frc_quarter_nyquist", "frc_half_nyquist", "frc_3q_nyquist")


@dataclass
class Truth:
    """The truth of one case and the score of a constant object on it."""

    object: np.ndarray
    illumination: np.ndarray
    pixel_size_m: float
    constant_nrmse: float = math.nan
    constant_frc: tuple[float, ...] = ()

    @classmethod
    def read(cls, path: str | Path) -> Truth:
        """Read ``/truth`` of a data-exchange file and score a constant object on it."""
        import h5py

        with h5py.File(path, "r") as f:
            obj = np.asarray(f["truth/object"])[0]
            illum = np.asarray(f["truth/illumination"], dtype=np.float64)
            px = float(f["metadata/psize_cm"][()]) * 1e-2
        truth = cls(obj, illum, px)
        const = truth.measure(np.ones_like(obj))
        truth.constant_nrmse = const["nrmse"]
        truth.constant_frc = tuple(const[f"frc_{b}"] for b in BANDS)
        return truth

    def measure(self, estimate: np.ndarray) -> dict[str, float]:
        """Return NRMSE, FRC at ``BANDS`` of Nyquist and the aligned shift of ``estimate``."""
        frc, err = FrcMetric(FrcMetricConfig()), NrmseMetric(NrmseMetricConfig())
        pair = frc.prepare(estimate, self.object, self.illumination)
        args = (estimate, self.object, self.illumination, self.pixel_size_m)
        values = {**frc(*args, prepared=pair), **err(*args, prepared=pair)}
        out = {"nrmse": values["nrmse"]}
        out.update({f"frc_{b}": values[k] for b, k in zip(BANDS, FRC_KEYS, strict=True)})
        out["shift_y_px"], out["shift_x_px"] = pair.shift_yx
        return out


@dataclass
class Row:
    """One line of the peer table."""

    case: str
    tool: str
    engine: str
    start: str
    sweeps: int
    threads: int
    seconds_per_sweep: float = math.nan
    nrmse: float = math.nan
    frc_0_25: float = math.nan
    frc_0_5: float = math.nan
    frc_0_75: float = math.nan
    shift_y_px: float = math.nan
    shift_x_px: float = math.nan
    status: str = "ok"
    extra: dict = field(default_factory=dict)


def score(row: Row, obj: np.ndarray | None, seconds: np.ndarray, truth: Truth) -> Row:
    """Fill ``row`` from a result (``obj`` None: the run failed, ``row.status`` says why)."""
    if obj is None:
        return row
    if len(seconds):
        row.seconds_per_sweep = float(np.median(seconds))
    if not np.isfinite(obj).all():
        row.status = f"FAILED: object has {int((~np.isfinite(obj)).sum())} non-finite pixels"
        return row
    try:
        m = truth.measure(obj)
    except Exception as exc:  # reported in the table
        row.status = f"FAILED: scorer raised {type(exc).__name__}: {exc}"
        return row
    row.nrmse = m["nrmse"]
    row.frc_0_25, row.frc_0_5, row.frc_0_75 = (m[f"frc_{b}"] for b in BANDS)
    row.shift_y_px, row.shift_x_px = m["shift_y_px"], m["shift_x_px"]
    if not math.isfinite(row.nrmse):
        row.status = "FAILED: NRMSE is not finite"
    elif row.nrmse >= CONSTANT_FRACTION * truth.constant_nrmse:
        row.status = (
            f"FAILED: scores like a constant (NRMSE {row.nrmse:.3f}, "
            f"a constant object {truth.constant_nrmse:.3f})"
        )
    elif like_constant_frc(row, truth):
        row.status = (
            f"FAILED: scores like a constant (FRC {row.frc_0_25:.3f}, {row.frc_0_5:.3f} at 1/4, "
            f"1/2 Nyquist; a constant object {truth.constant_frc[0]:.3f}, "
            f"{truth.constant_frc[1]:.3f})"
        )
    elif row.start == "truth probe":
        worst = max(abs(row.shift_y_px), abs(row.shift_x_px))
        if worst > MAPPING_TOLERANCE_PX:
            row.status = (
                f"FAILED: mapping check shift ({row.shift_y_px:+.2f}, {row.shift_x_px:+.2f}) px "
                f"> {MAPPING_TOLERANCE_PX}"
            )
        else:
            row.status = f"mapping ok (|shift| <= {MAPPING_TOLERANCE_PX} px)"
    return row


def like_constant_frc(row: Row, truth: Truth) -> bool:
    """Return True when the FRC at 1/4 and 1/2 Nyquist are both at most a constant object's
    plus ``CONSTANT_FRC_MARGIN`` (no structure recovered at either band)."""
    if len(truth.constant_frc) < 2:
        return False
    return (
        row.frc_0_25 <= truth.constant_frc[0] + CONSTANT_FRC_MARGIN
        and row.frc_0_5 <= truth.constant_frc[1] + CONSTANT_FRC_MARGIN
    )
