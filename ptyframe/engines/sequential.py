"""Sweep the positions one at a time (the PIE family's sweep), on either backend.

For position ``r`` in the sweep's order, with object window ``O_r`` and probe ``P`` (both taken
*before* this position's update, as in the PINE reference code)::

    psi       = O_r * T_f P                                         (exit wave)
    Psi       = F psi
    Psi'      = sqrt(I_r) * Xi(Psi)        Xi(z) = z/|z|, Xi(0) = 1  (PINE eqs. 14-15)
    dpsi      = F^-1 Psi' - psi
    O_r, P    <- the rule's steps (``ptyframe.engines.rules.pie_update``)

(``ptyframe.physics.projection`` states the Fourier constraint for several modes and unmeasured
pixels.) ``T_f`` moves the probe by the position's sub-pixel fraction; the probe step is
shifted back by ``T_-f`` (the shift is unitary, so this is the exact gradient mapping), and
during such a sweep the probe lives as its spectrum (``ptyframe.physics.subpixel
.FourierProbe``).

The run's corrections (``ptyframe.engines.corrections.hooks.SweepHooks``, ``plan.hooks``)
are called at fixed points of a visit: OPR's probe of the position, the flux-scaled
amplitudes, the position sums after ``dpsi`` (before the update changes ``O_r``), OPR's probe
step. The fused sweep runs the position sums (``corrections.position_kernels``); the frame
picks the torch sweep for the others.

``sweep_torch`` is the specification, in torch on any device. ``FusedSweep`` runs the same
maths with the fused numba kernels of ``ptyframe.engines.kernels`` and the planned DFTs of
``ptyframe.engines.pie_fft``; tests hold the two equal for every engine that runs them.

Both read ``sqrt(I_r)`` (and the measured pixels) visit by visit from ``ptyframe.data.feed``:
views of float amplitudes in memory, or rows formed from the stored counts ahead of the
sweep in a background thread (in memory or streamed from the file); the sweep's arithmetic
is the same either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ptyframe.data import feed
from ptyframe.data.feed import PatternData
from ptyframe.engines import kernels as kernel_module
from ptyframe.engines import pie_fft
from ptyframe.engines.backend import Backend
from ptyframe.engines.corrections import position_kernels
from ptyframe.engines.rules import PieRule, pie_update
from ptyframe.engines.scan import ScanWindows
from ptyframe.physics.projection import detector_delta
from ptyframe.physics.subpixel import FourierProbe
from ptyframe.state import ReconstructionState

if TYPE_CHECKING:
    from ptyframe.engines.corrections.hooks import SweepHooks

#: A hook run every ``SweepPlan.every`` positions on the object ``[H, W]`` and the real-space
#: probe ``[K, M, N]`` (mPIE's momentum), modifying them in place.
PositionsHook = Callable[[torch.Tensor, torch.Tensor], None]


@dataclass
class SweepPlan:
    """What one sequential sweep does: visit ``order`` with ``rule``, hook every ``every``."""

    order: list[int]
    rule: PieRule
    every: int = 0
    hook: PositionsHook | None = None
    #: positions visited in earlier sweeps: the hook's period runs on across sweeps (a scan
    #: of fewer than ``every`` positions would otherwise never reach it)
    visited: int = 0
    #: the corrections' per-visit calls (None: none this run)
    hooks: SweepHooks | None = None


def probe_shifter(probe: torch.Tensor, scan: ScanWindows) -> FourierProbe | None:
    """Return the probe as its spectrum with the scan's ramps, or None for whole pixels."""
    if not scan.shifted:
        return None
    return FourierProbe(probe, scan.frac, scan.ramps(probe.dtype))


def run_hook(plan: SweepPlan, obj: torch.Tensor, probe: torch.Tensor, shifter) -> None:
    """Run ``plan.hook`` on the object and the real-space probe (made from the spectrum)."""
    assert plan.hook is not None
    if shifter is None:
        plan.hook(obj, probe)
        return
    real = shifter.probe()
    plan.hook(obj, real)
    shifter.spectrum.copy_(torch.fft.fft2(real))


def sweep_torch(
    state: ReconstructionState, data: PatternData, scan: ScanWindows, plan: SweepPlan
) -> float:
    """Run the sweep in torch (any device); return the error numerator (module docstring).

    ``a`` ``[1, M, N]``: the visit's measured amplitudes, ``v`` its measured pixels or None
    (``ptyframe.data.feed.tensor_rows``).
    """
    obj = state.object[0]
    probe = state.probe
    m, n = probe.shape[-2:]
    hooks = plan.hooks
    opr = hooks is not None and hooks.opr is not None  # the probe is OPR's, per position
    shifter = probe_shifter(probe, scan) if not opr else None
    err = torch.zeros((), dtype=torch.float64, device=obj.device)
    with closing(feed.tensor_rows(data, plan.order, obj.device)) as visits:
        for count, (j, a, v) in enumerate(visits, 1):
            y, x = scan.cy[j], scan.cx[j]
            patch = obj[y : y + m, x : x + n]
            o_old = patch.clone()
            if opr:
                p = hooks.probe(j, probe, scan)  # type: ignore[union-attr]
            else:
                p = shifter.shifted(j) if shifter is not None else probe
            wave = torch.fft.fft2(o_old * p, norm="ortho")  # [K, M, N]
            c = 1.0
            if hooks is not None:
                a, c = hooks.amplitudes(j, wave, a, v)  # flux: a_j / c_j
            dwave, e = detector_delta(wave[None], a, v)
            err += e[0] * c
            dpsi = torch.fft.ifft2(dwave[0], norm="ortho")  # F^-1 Psi' - psi
            if hooks is not None:
                hooks.observe(j, o_old, p, dpsi)  # the position sums
            o_step, p_step = pie_update(o_old, p, dpsi, plan.rule)
            patch.add_(o_step)
            if p_step is not None:
                if opr:
                    hooks.add_probe_step(j, p_step, probe, scan)  # type: ignore[union-attr]
                elif shifter is not None:
                    shifter.add_shifted_back(j, p_step)
                else:
                    probe.add_(p_step)
            if plan.every and (plan.visited + count) % plan.every == 0:
                run_hook(plan, obj, probe, shifter)
    if shifter is not None:
        probe.copy_(shifter.probe())
    return float(err)


class FusedSweep:
    """The sweep on the numba backend: fused kernels, DFTs planned once per shape."""

    def __init__(self) -> None:
        self._fft: pie_fft.WindowFFT | None = None

    def window_fft(
        self, probe: torch.Tensor, subpixel: bool, backend: Backend
    ) -> pie_fft.WindowFFT:
        """Return the planned transforms for ``probe``'s shape (made once, then reused)."""
        k, m, n = probe.shape
        shape = (int(k), int(m), int(n))
        fft = self._fft
        if fft is None or not fft.matches(
            shape, probe.dtype, subpixel, backend.fft, backend.planner
        ):
            fft = pie_fft.WindowFFT(shape, probe.dtype, subpixel, backend.fft, backend.planner)
            self._fft = fft
        return fft

    def run(
        self,
        state: ReconstructionState,
        data: PatternData,
        scan: ScanWindows,
        plan: SweepPlan,
        backend: Backend,
    ) -> float:
        """Run the sweep with the fused kernels (CPU); return the error numerator.

        ``data``'s rows come from ``ptyframe.data.feed.rows`` (host arrays of the run's real
        dtype); the single-mode kernels run where there is one mode and no pattern has an
        unmeasured pixel. The transforms are the unscaled DFTs of ``pie_fft.WindowFFT``; the
        kernels apply the scale factors. With integer positions the probe alternates between
        ``state.probe`` and a second buffer (each update reads one and writes the other, which
        keeps the compiled loop vectorised); it is copied back into ``state.probe`` at the end
        and before the hook.
        """
        probe = state.probe
        _, m, n = probe.shape
        shifter = probe_shifter(probe, scan)
        subpixel = shifter is not None
        rule = plan.rule if not subpixel else writes_step_alone(plan.rule)
        obj_np = state.object[0].numpy()
        one = probe.shape[0] == 1 and not data.has_unmeasured  # the single-mode kernels
        all_measured = kernel_module.no_mask((m, n))
        bufs = SweepBuffers(probe, one, self.window_fft(probe, subpixel, backend))
        fft = bufs.fft
        kern = kernel_module.kernels()
        dtype = obj_np.dtype
        inv_s, inv_n = kernel_module.real_scalars(dtype, 1.0 / math.sqrt(m * n), 1.0 / (m * n))
        if shifter is not None:
            spec, ry, rx = (t.numpy() for t in (shifter.spectrum, shifter.ry, shifter.rx))
        rule_a = rule.array(kernel_module.real_dtype(dtype))
        maxima, psi, wave, dpsi = bufs.maxima, bufs.psi, bufs.wave, bufs.dpsi
        views, max_bits = bufs.abs2_views, bufs.max_bits
        forward, inverse = fft.forward, fft.inverse
        exit1, exit_k = kern.exit_wave1, kern.exit_wave
        modulus1, modulus_k = kern.modulus_delta1, kern.modulus_delta
        update = kern.update1 if one else kern.update
        cy, cx, every, visited = scan.cy, scan.cx, plan.every, plan.visited
        probe_steps = bool(rule.update_probe)
        pos_sums = _position_sums(plan, one, dtype)  # None: no position correction now
        err = 0.0
        with closing(feed.rows(data, plan.order)) as visits:
            for count, (j, a, v) in enumerate(visits, 1):  # a: sqrt(I_j), v: measured or None
                y0, x0 = cy[j], cx[j]
                if shifter is not None:  # T_f P = F^-1[F(P) r_f]
                    kern.ramp_shift(spec, ry[j], rx[j], fft.spec, inv_n)
                    fft.shift()
                    p, p_out = bufs.shifted, wave  # wave is free once F^-1 is taken
                else:
                    p, p_out = bufs.current(), bufs.other()
                if one:
                    exit1(obj_np, y0, x0, p, psi, *views, max_bits)
                else:
                    exit_k(obj_np, y0, x0, p, psi, maxima)
                forward()
                if one:
                    err += modulus1(wave, a, inv_s, inv_n)
                elif v is None:  # every pixel of this pattern measured
                    err += modulus_k(wave, a, all_measured, False, inv_s, inv_n)
                else:
                    err += modulus_k(wave, a, v, True, inv_s, inv_n)
                inverse()
                if pos_sums is not None:  # before the update changes the object window
                    pos_sums(obj_np, y0, x0, p, dpsi, j)
                update(obj_np, y0, x0, p, dpsi, p_out, maxima, rule_a)
                if shifter is None:
                    bufs.swap()
                elif probe_steps and maxima[0] > 0:  # F(P) += F(step) conj(r_f)
                    fft.fold()
                    kern.ramp_fold_back(spec, fft.spec, ry[j], rx[j])
                if every and (visited + count) % every == 0:
                    bufs.settle()
                    run_hook(plan, state.object[0], probe, shifter)
        bufs.settle()
        if shifter is not None:
            probe.copy_(shifter.probe())
        return err


def _position_sums(plan: SweepPlan, one: bool, dtype: np.dtype) -> Callable[..., None] | None:
    """Return ``f(obj, y0, x0, p, dpsi, j)`` adding visit ``j``'s position sums into the
    correction's ``[N, 5]`` array (``corrections.position_kernels``), or None when the
    sweep takes none (no position correction, or before its start)."""
    sums = plan.hooks.position_sums() if plan.hooks is not None else None
    if sums is None:
        return None
    kern = position_kernels.kernels()
    kernel = kern.position_sums1 if one else kern.position_sums
    half = position_kernels.half_of(dtype)

    def add(obj: np.ndarray, y0: int, x0: int, p: np.ndarray, d: np.ndarray, j: int) -> None:
        kernel(obj, y0, x0, p, d, sums[j], half)

    return add


def writes_step_alone(rule: PieRule) -> PieRule:
    """Return ``rule`` writing the probe step alone (a sub-pixel sweep folds it back itself)."""
    from dataclasses import replace

    return replace(rule, accumulate=False)


class SweepBuffers:
    """Scratch arrays of one fused sweep (numpy views of torch tensors, no copies).

    The transforms' buffers (``fft``, a ``pie_fft.WindowFFT``): ``psi``, the exit wave, then
    ``dpsi = F^-1(Psi' - Psi)`` (psi is free once ``F psi`` is taken); ``wave``: the far
    field, then ``(Psi' - Psi) / sqrt(N)``, then the sub-pixel probe step; ``shifted`` the
    sub-pixel-shifted probe (``spec`` the spectrum scratch). ``o_abs2``, ``p_abs2``: the
    squared moduli for the maxima, in ``wave``'s memory before ``F psi`` is written there;
    the probe's second buffer for integer positions (``current``/``other``/``swap``,
    ``settle`` copies it back into the probe). Sharing the memory keeps the working set of a
    position small enough for the core's L2 cache. With ``one`` (one mode) the arrays are
    ``[M, N]``, else ``[K, M, N]``.
    """

    def __init__(self, probe: torch.Tensor, one: bool, fft: pie_fft.WindowFFT) -> None:
        self.probe_t = probe
        self.fft = fft
        self.alt_t = torch.empty_like(probe)
        pick = (lambda a: a[0]) if one else (lambda a: a)
        self.psi, self.wave, self.shifted = (pick(a) for a in (fft.psi, fft.wave, fft.shifted))
        self.dpsi = self.psi
        self._probes = (pick(probe.numpy()), pick(self.alt_t.numpy()))
        self._flip = 0
        m, n = probe.shape[-2:]
        first = fft.wave_t.as_strided((m * n,), (1,))  # wave's first m n elements (rows padded)
        halves = torch.view_as_real(first).reshape(-1).view(2, m, n)
        self.o_abs2, self.p_abs2 = halves.numpy()
        real = self.o_abs2.dtype
        bits = np.uint32 if real.itemsize == 4 else np.uint64
        #: ``[max|O_r|^2, max sum_k |P_k|^2]`` of the current position, and its bit view
        self.maxima = np.zeros(2, dtype=real)
        self.max_bits = self.maxima.view(bits)
        #: ``o_abs2, p_abs2`` and their bit views (the arguments of ``exit_wave1``)
        self.abs2_views = (self.o_abs2, self.p_abs2, self.o_abs2.view(bits), self.p_abs2.view(bits))

    def current(self) -> np.ndarray:
        """The buffer holding the current probe."""
        return self._probes[self._flip]

    def other(self) -> np.ndarray:
        """The buffer the next probe is written to."""
        return self._probes[1 - self._flip]

    def swap(self) -> None:
        """Make the buffer just written the current probe."""
        self._flip = 1 - self._flip

    def settle(self) -> None:
        """Leave the current probe in ``state.probe`` (copy it back if it is the second)."""
        if self._flip:
            self.probe_t.copy_(self.alt_t)
            self._flip = 0
