"""Correct the scan positions from each visit's exit-wave update (LSQML's position gradient).

Model. Position ``j`` cuts the object window ``O_j(r) = O(c_j + r)`` and forms
``psi_jk = O_j P_jk`` (incoherent modes ``k``). Were the true position ``p_j + delta_j``,
the exit wave would be, to first order (a translation of the whole window changes no
far-field intensity, so the object may be moved under a fixed probe)::

    psi_jk(delta) = psi_jk + delta_y P_jk d_y O_j + delta_x P_jk d_x O_j

Each visit's modulus projection gives ``chi_jk = psi'_jk - psi_jk``; the shift that best
explains it in least squares, ``min_delta sum_k sum_r |chi_jk - delta . P_jk grad O_j|^2``,
solves the 2x2 normal equations::

    [a_yy + lam   a_yx      ] [delta_y]   [b_y]
    [a_yx         a_xx + lam] [delta_x] = [b_x]

    a_yy = sum_r w |g_y|^2,  a_xx = sum_r w |g_x|^2,  a_yx = sum_r w Re(conj(g_y) g_x)
    b_y  = sum_r Re(conj(g_y) q),  b_x = sum_r Re(conj(g_x) q)
    w = sum_k |P_jk|^2,  q = sum_k conj(P_jk) chi_jk,  (g_y, g_x) = grad O_j

This is the position update of Odstrcil, Menzel & Guizar-Sicairos, Opt. Express 26, 3108
(2018), sec. 4 (the position gradient of LSQML, ``delta_x = sum Re(conj(d_x O P) chi) /
sum |d_x O P|^2`` per axis), here with the cross term ``a_yx`` of the 2x2 system (it is
the per-axis rule when ``a_yx = 0``) and summed over incoherent modes. ``lam`` is a Tikhonov
weight: ``regularisation`` times the scan's median of ``(a_yy + a_xx) / 2``, so featureless
positions (flat object, dark probe) barely move.

Why this update (and not the cross-correlation of Zhang et al., Opt. Express 21, 13592
(2013), or the intensity-gradient fit of Dwivedi et al., Ultramicroscopy 192, 29 (2018)):
it uses only what the sweep already holds after the inverse transform (``O_j``, ``P_j``,
``chi_j``), in one elementwise pass with no extra FFT; Zhang's needs an upsampled
cross-correlation of object windows per position and Dwivedi's the gradient of the modelled
intensity, i.e. extra transforms per position, at least the cost of the PIE update itself.
The finite-difference gradient underestimates high frequencies and the modulus projection
drops the part of ``delta . P grad O`` that only changes far-field phases, so a single
estimate is biased low (by a factor that depends on object and probe); the heavy-ball
accumulation over sweeps (friction ``momentum``; PtyLab's position correction accumulates its
cross-correlation steps the same way, with friction 0.9) makes up for it: a bias ``b`` and gain
``g`` converge for ``0 < g b < 2 (1 + momentum)``, i.e. for every bias ``b <= 1`` at the
defaults.

Per sweep (``end_epoch``), with ``PositionConfig``::

    delta_j <- gain * solve(...)                     positions visited this sweep
    delta_j <- delta_j - mean_j delta_j              the scan's global offset is invisible
    v_j     <- delta_j + momentum v_j                heavy-ball accumulation
    v_j     <- v_j * min(1, max_step_px / |v_j|)     the per-sweep step limit
    v       <- v - map_part(v)   (or v - mean v)     the recorded map (or the scan's centre) kept
    p_j     <- p_j + v_j, clipped to the object frame (a clipped position's v_j <- 0)
    map     <- fit_scan_map(nominal, p)              (recorded; ``corrections.affine``)
    p_j     <- p_j - affine_weight * (p_j - map(n_j))

Unless ``scan_map`` is on (from sweep ``scan_map_start``), the part of ``delta`` that a global
map explains (translation, scale, rotation, shear, drift: ``map_part``) is removed before the
accumulation and again from the limited velocity (the step limit is not linear, so a map
part would creep in): a global scale is only weakly seen in the data (the probe's curvature
trades against it), and a free map drifts while the object is still forming. The frame's
object must leave room around the scan for the positions to move (the clip is a wall).

The gradients are the window's own (``torch.gradient``: central inside, one-sided on the
edge), so the torch reference here and the numba kernels of ``position_kernels`` compute the
same numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ptyframe.engines.corrections import coarse
from ptyframe.engines.corrections.affine import ScanMap, design_matrix, fit_scan_map
from ptyframe.engines.corrections.base import FrameView, n_positions
from ptyframe.engines.corrections.config import PositionConfig
from ptyframe.errors import ConfigError

#: Tikhonov weight of the coarse map step, relative to its mean curvature
COARSE_REGULARISATION = 1e-3
#: the entries of ``L - I`` in the history (``end_epoch``'s scalars)
MAP_KEYS = ("yy", "yx", "xy", "xx")
#: columns of the per-position sums
SUMS = ("a_yy", "a_xx", "a_yx", "b_y", "b_x")


def window_gradients(o_window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(d_y O, d_x O)`` of windows ``[..., M, N]`` (``torch.gradient``, spacing 1)."""
    gy = torch.gradient(o_window, dim=-2)[0]
    gx = torch.gradient(o_window, dim=-1)[0]
    return gy, gx


def position_sums(o_window: torch.Tensor, probes: torch.Tensor, chi: torch.Tensor) -> torch.Tensor:
    """Return the five sums ``[a_yy, a_xx, a_yx, b_y, b_x]`` of each window (module docstring).

    Batched: ``o_window`` ``[B, M, N]``, ``probes`` ``[B, K, M, N]`` (or ``[K, M, N]``
    shared), ``chi`` ``[B, K, M, N]`` -> ``[B, 5]`` float64. One position: ``[M, N]``,
    ``[K, M, N]``, ``[K, M, N]`` -> ``[5]``. ``probes`` are the probes the exit waves were
    made with (sub-pixel shifted, or the position's own under probe variation).
    """
    single = o_window.dim() == 2
    if single:
        o_window, chi = o_window[None], chi[None]
        probes = probes[None] if probes.dim() == 3 else probes
    if probes.dim() == 3:
        probes = probes[None]
    gy, gx = window_gradients(o_window)
    w = (probes.real.square() + probes.imag.square()).sum(1)  # [B, M, N]
    q = (probes.conj() * chi).sum(1)
    dims = (-2, -1)

    def total(x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float64).sum(dims)

    out = torch.stack(
        [
            total(w * (gy.real.square() + gy.imag.square())),
            total(w * (gx.real.square() + gx.imag.square())),
            total(w * (gy.real * gx.real + gy.imag * gx.imag)),
            total(gy.real * q.real + gy.imag * q.imag),
            total(gx.real * q.real + gx.imag * q.imag),
        ],
        dim=-1,
    )
    return out[0] if single else out


def _compiled_batch(o_window: torch.Tensor, probes: torch.Tensor, chi: torch.Tensor) -> bool:
    """Return whether a batch's sums can run in the numba kernels (CPU, one complex dtype)."""
    from ptyframe.engines.corrections import position_kernels

    same = o_window.dtype == probes.dtype == chi.dtype
    on_cpu = o_window.device.type == probes.device.type == chi.device.type == "cpu"
    return same and on_cpu and o_window.is_complex() and position_kernels.available()


def _add_batch(
    sums: np.ndarray,
    idx: int | torch.Tensor | np.ndarray,
    o_window: torch.Tensor,
    probes: torch.Tensor,
    chi: torch.Tensor,
) -> None:
    """Add a batch's sums (``position_sums``' numbers) with the numba kernels, window by
    window: each window is its own object (``y0 = x0 = 0``), so the gradients are the
    window's own, as in the torch reference."""
    from ptyframe.engines.corrections import position_kernels

    kern = position_kernels.kernels().position_sums
    rows = np.asarray(torch.as_tensor(idx).cpu()).reshape(-1)
    o_np = o_window.detach().resolve_conj().numpy()
    p_np = probes.detach().resolve_conj().numpy()
    c_np = chi.detach().resolve_conj().numpy()
    half = position_kernels.half_of(o_np.dtype)
    for b, j in enumerate(rows.tolist()):
        p_b = p_np[b] if p_np.ndim == 4 else p_np
        kern(o_np[b], 0, 0, p_b, c_np[b], sums[j], half)


def solve_shifts(sums: np.ndarray, regularisation: float) -> np.ndarray:
    """Return the least-squares shifts ``[N, 2]`` (y, x) of sums ``[N, 5]`` (module docstring).

    Rows of zeros (positions not visited) give zero shifts.
    """
    s = np.asarray(sums, dtype=np.float64)
    a_yy, a_xx, a_yx, b_y, b_x = s.T
    diag = 0.5 * (a_yy + a_xx)
    seen = diag > 0
    lam = float(regularisation) * float(np.median(diag[seen])) if seen.any() else 0.0
    a11, a22 = a_yy + lam, a_xx + lam
    det = a11 * a22 - a_yx * a_yx
    ok = seen & (det > 0)
    out = np.zeros((s.shape[0], 2))
    out[ok, 0] = (a22[ok] * b_y[ok] - a_yx[ok] * b_x[ok]) / det[ok]
    out[ok, 1] = (a11[ok] * b_x[ok] - a_yx[ok] * b_y[ok]) / det[ok]
    return out


def map_part(nominal_px: np.ndarray, steps_px: np.ndarray, which: np.ndarray) -> np.ndarray:
    """Return the part of ``steps`` that a change of the global scan map explains.

    The least-squares fit ``steps ~ t + (n - c) B + v (tau - 1/2)`` (``corrections.affine``,
    the drift column only where it is not collinear with the positions) over the positions
    ``which`` (a boolean mask of the scan, for ``tau``), evaluated at them.
    """
    x = design_matrix(nominal_px, np.flatnonzero(which), which.shape[0])
    if x.shape[0] <= x.shape[1] or np.linalg.matrix_rank(x) < x.shape[1]:
        return np.zeros_like(steps_px)
    b, *_ = np.linalg.lstsq(x, steps_px, rcond=None)
    return x @ b


def limit_steps(steps_px: np.ndarray, max_step_px: float) -> np.ndarray:
    """Return ``steps`` ``[N, 2]`` scaled down where ``|step| > max_step_px``."""
    length = np.sqrt((steps_px**2).sum(axis=1))
    scale = np.minimum(1.0, max_step_px / np.maximum(length, 1e-300))
    return steps_px * scale[:, None]


class PositionCorrection:
    """Refine the scan positions; a ``Correction`` of the engine frame (module docstring).

    The sweep calls ``observe`` (torch) once per visit, or the kernels of
    ``position_kernels`` fill ``sums`` (``[N, 5]`` float64, numpy) directly; ``end_epoch``
    moves ``positions_px``, which the frame reads back to cut the next sweep's windows.
    """

    name = "positions"

    def __init__(self, config: PositionConfig | None = None) -> None:
        self.config = config or PositionConfig()
        self.nominal_px = np.zeros((0, 2))
        self.positions = np.zeros((0, 2))
        self.sums = np.zeros((0, 5))
        self.velocity = np.zeros((0, 2))
        self.scan_map: ScanMap | None = None
        self.limits_px = (math.inf, math.inf)
        self.active = False
        self.last_step_rms_px = 0.0

    # ---------------------------------------------------------------- frame protocol
    def prepare(self, ctx: FrameView) -> None:
        """Take the nominal positions; refuse a scan of one position."""
        n = n_positions(ctx)
        if n < 2:
            raise ConfigError(
                f"engine.refine.positions=true needs at least 2 positions (this scan has {n}): "
                "a single position's offset is invisible in its pattern; set "
                "engine.refine.positions=false"
            )
        self.nominal_px = ctx.positions_px.detach().cpu().to(torch.float64).numpy().copy()
        self.positions = self.nominal_px.copy()
        self.sums = np.zeros((n, 5))
        self.velocity = np.zeros((n, 2))  # the heavy-ball accumulation of the shifts
        self.scan_map = ScanMap.identity(self.nominal_px)
        shape = getattr(ctx, "object_shape", None)
        if shape is not None:
            self.limits_px = (float(shape[0] - ctx.window[0]), float(shape[1] - ctx.window[1]))

    def begin_epoch(self, epoch: int, ctx: FrameView | None = None) -> None:
        """Clear the sums; statistics count from sweep ``start`` on."""
        self.sums.fill(0.0)
        self.active = epoch >= int(self.config.start)

    def observe(
        self,
        idx: int | torch.Tensor | np.ndarray,
        o_window: torch.Tensor,
        probes: torch.Tensor,
        chi: torch.Tensor,
    ) -> None:
        """Add one visit's (or a batch's) sums; see ``position_sums`` for the shapes."""
        if not self.active:
            return
        if o_window.dim() == 3 and _compiled_batch(o_window, probes, chi):
            _add_batch(self.sums, idx, o_window, probes, chi)
            return
        s = position_sums(o_window, probes, chi).cpu().numpy()
        if s.ndim == 1:
            self.sums[int(idx)] += s
        else:
            np.add.at(self.sums, np.asarray(torch.as_tensor(idx).cpu()), s)

    def allreduce(self, distribution: Any) -> None:
        """Sum the sums over ranks (each rank holds its own positions' rows)."""
        if getattr(distribution, "size", 1) > 1:
            t = torch.from_numpy(self.sums)
            distribution.allreduce_sum_(t)

    def end_epoch(self, epoch: int, ctx: FrameView | None = None) -> dict[str, float]:
        """Move the positions by this sweep's limited least-squares shifts; refit the map."""
        c = self.config
        coarse_out = self._coarse(epoch, ctx)
        if not self.active:
            return coarse_out
        seen = self.sums[:, 0] + self.sums[:, 1] > 0
        steps = c.gain * solve_shifts(self.sums, c.regularisation)
        if seen.any():
            steps[seen] -= steps[seen].mean(axis=0)
            if not (c.scan_map and epoch >= int(c.scan_map_start)):
                steps[seen] -= map_part(self.nominal_px[seen], steps[seen], seen)
        self.velocity[seen] = steps[seen] + c.momentum * self.velocity[seen]
        self.velocity = limit_steps(self.velocity, float(c.max_step_px))
        every = np.ones(self.velocity.shape[0], dtype=bool)
        if not (c.scan_map and epoch >= int(c.scan_map_start)):  # keep the recorded map
            self.velocity -= map_part(self.nominal_px, self.velocity, every)
        else:  # keep the scan's centre (its global offset is invisible)
            self.velocity -= self.velocity.mean(axis=0)
        steps = self.velocity.copy()
        moved = self.positions + steps
        self.positions = self._inside(moved)
        stopped = np.any(self.positions != moved, axis=1)
        self.velocity[stopped] = 0.0  # a position at the frame's edge loses its momentum
        rms = float(np.sqrt((steps[seen] ** 2).sum(1).mean())) if seen.any() else 0.0
        out = {"position_step_rms_px": rms}
        self.scan_map = fit_scan_map(self.nominal_px, self.positions)
        if c.affine_weight > 0:
            on_map = self.scan_map.apply(self.nominal_px)
            self.positions = self._inside(
                self.positions - c.affine_weight * (self.positions - on_map)
            )
        out.update({f"scan_{k}": v for k, v in self.scan_map.parameters().items()})
        moved = self.positions - self.nominal_px
        moved = moved - moved.mean(axis=0)
        out["position_shift_rms_px"] = float(np.sqrt((moved**2).sum(1).mean()))
        self.last_step_rms_px = out["position_step_rms_px"]
        out.update(coarse_out)
        return out

    def _coarse(self, epoch: int, ctx: FrameView | None) -> dict[str, float]:
        """With ``scan_map``, in the sweeps ``[coarse_start, coarse_until)``: the coarse map
        step of ``corrections.coarse`` (object warped in place, positions mapped). The
        positions' momentum is dropped, and this sweep's gradient sums (taken at the old
        positions, on the old object) are not applied."""
        c = self.config
        obj = getattr(ctx, "object", None)
        data = getattr(ctx, "patterns", None)
        if not c.scan_map or obj is None or data is None or ctx is None:
            return {}
        if not int(c.coarse_start) <= epoch < int(c.coarse_until):
            return {}
        g, h = coarse.deformation_system(obj[0], ctx.probe, self.positions, data)
        lm = coarse.solve_deformation(g, h, COARSE_REGULARISATION, c.coarse_gain, False)
        moved, centre = coarse.map_positions(self.positions, lm, ctx.window)
        obj[0].copy_(coarse.warp_object(obj[0], lm, centre))
        self.positions = self._inside(moved)
        self.sums.fill(0.0)
        self.velocity.fill(0.0)
        change = (lm - np.eye(2)).ravel()
        return {f"coarse_map_{k}": float(v) for k, v in zip(MAP_KEYS, change, strict=True)}

    def on_roll(self, sy: int, sx: int) -> None:
        """Nothing: rolling object and probe together leaves the positions as they are."""

    @property
    def positions_px(self) -> torch.Tensor:
        """The refined positions ``[N, 2]`` float64 (the frame cuts its windows there)."""
        return torch.from_numpy(self.positions)

    def state_dict(self) -> dict[str, Any]:
        """Return what a resume needs (positions and map; the sums are per sweep)."""
        m = self.scan_map.as_array() if self.scan_map is not None else np.zeros(10)
        return {
            "nominal_px": self.nominal_px.copy(),
            "positions_px": self.positions.copy(),
            "velocity_px": self.velocity.copy(),
            "scan_map": m,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict``'s positions and map (and the recorded positions: a resumed
        frame starts from the refined ones)."""
        if "nominal_px" in state:
            self.nominal_px = np.asarray(state["nominal_px"], dtype=np.float64).copy()
        self.positions = np.asarray(state["positions_px"], dtype=np.float64).copy()
        self.velocity = np.asarray(state["velocity_px"], dtype=np.float64).copy()
        self.scan_map = ScanMap.from_array(state["scan_map"])

    def results(self) -> dict[str, np.ndarray]:
        """Return the datasets for recon.h5: positions, their moves, the scan map."""
        out = {
            "positions_px": self.positions.copy(),
            "position_corrections_px": self.positions - self.nominal_px,
        }
        if self.scan_map is not None:
            out["scan_map"] = self.scan_map.as_array()
            params = self.scan_map.parameters()
            out["scan_map_parameters"] = np.array(list(params.values()))
        return out

    # ---------------------------------------------------------------- helpers
    def _inside(self, positions: np.ndarray) -> np.ndarray:
        """Clip positions so every window stays inside the object frame."""
        hy, hx = self.limits_px
        out = positions.copy()
        out[:, 0] = np.clip(out[:, 0], 0.0, hy)
        out[:, 1] = np.clip(out[:, 1], 0.0, hx)
        return out
