"""Run the PIE family's near-field sweep (one slice) with fused numba kernels and planned DFTs.

The compiled form of ``ptyframe.engines.visit_sweeps.sweep_visits`` (the specification,
tests hold the two equal) for a ``NearFieldPropagator`` with a buffer of ``b`` pixels and
one slice. Per position with corner ``c`` on the padded object and the (shifted) probe
``P`` ``[K, M', N']``::

    psi     = O_c P                        kernels.exit_wave(1)   (and the two maxima)
    Psi     = C_b F^-1 [H F psi]           D, transfer(H / N'), D^H
    delta   = Psi' - Psi (zero-padded)     nearfield_kernels.near_delta
    chi     = F^-1 [conj(H) F delta]       D, transfer(conj(H) / N'), D^H
    O_c, P  <- rules.pie_update with chi   kernels.update(1)      (e3PIE's first slice)

with ``D``, ``D^H`` the unscaled DFTs of ``pie_fft.WindowFFT`` on the buffered window
(``torch.fft`` unless the run asks for ``engine.fft=fftw``: FFTW plans made by
``FFTW_ESTIMATE`` without wisdom; ``backend.resolve``'s ``auto_fftw``), and the PIE rule
the far field's fused kernels compile (``rules.pie_coefficients``), not a copy.

The window of corner ``c`` (on the object padded by ``b``) covers object pixels ``c - b ..
c + M + b``. Where it lies inside the object the kernels work on the object itself; where
it leaves the object (``VacuumWindow``) they work on a window buffer holding vacuum (1)
outside the object, as ``visit.read_box`` gives, and only the part inside is copied back
(``visit.add_box`` drops the rest). mPIE's momentum hook sees the object ``[H, W]`` and the
real-space probe, as in the torch sweep. Sub-pixel positions and the alternating probe
buffers are those of the far field's ``sequential.FusedSweep``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing

import numpy as np
import torch

from ptyframe.data import feed
from ptyframe.data.feed import PatternData
from ptyframe.engines import kernels as kernel_module
from ptyframe.engines import nearfield_kernels
from ptyframe.engines.backend import Backend
from ptyframe.engines.rules import PieRule
from ptyframe.engines.scan import ScanWindows
from ptyframe.engines.sequential import (
    FusedSweep,
    SweepBuffers,
    SweepPlan,
    probe_shifter,
    run_hook,
    writes_step_alone,
)
from ptyframe.engines.visit import VisitModel
from ptyframe.physics.detector import NearFieldPropagator
from ptyframe.state import ReconstructionState


def scaled_kernel(h: torch.Tensor, size: int) -> np.ndarray:
    """Return the transfer kernel ``h / size`` as a numpy array of ``h``'s dtype (divided in
    complex128, so ``D^H (h / N) D = F^-1 h F`` to the dtype's rounding)."""
    return (h.to(torch.complex128) / size).to(h.dtype).numpy()


class VacuumWindow:
    """A window buffer ``[M', N']`` for the corners whose window leaves the object.

    ``window(obj, y, x)`` returns ``(array, y0, x0)`` for the kernels: the object itself
    with the corner where the window ``obj[y:y+M', x:x+N']`` lies inside it; else this
    buffer, filled with vacuum (1) and the part of the object the window covers, with corner
    ``(0, 0)``. ``put_back`` then copies that part back (the rest of the step is dropped).
    """

    def __init__(self, shape: tuple[int, int], dtype: np.dtype) -> None:
        self.buf = np.ones(shape, dtype=dtype)
        self.part: tuple[slice, slice, slice, slice] | None = None

    def window(self, obj: np.ndarray, y: int, x: int) -> tuple[np.ndarray, int, int]:
        m, n = self.buf.shape
        height, width = obj.shape
        if y >= 0 and x >= 0 and y + m <= height and x + n <= width:
            self.part = None
            return obj, y, x
        y0, y1, x0, x1 = max(y, 0), min(y + m, height), max(x, 0), min(x + n, width)
        by, bx = slice(y0 - y, max(y1, y0) - y), slice(x0 - x, max(x1, x0) - x)
        self.part = (slice(y0, max(y1, y0)), slice(x0, max(x1, x0)), by, bx)
        self.buf.fill(1.0)
        self.buf[by, bx] = obj[self.part[0], self.part[1]]
        return self.buf, 0, 0

    def put_back(self, obj: np.ndarray) -> None:
        """Copy the updated part of the buffer into ``obj`` (after ``window`` gave it)."""
        if self.part is not None:
            oy, ox, by, bx = self.part
            obj[oy, ox] = self.buf[by, bx]


class NearFieldVisit:
    """One position's compiled passes, bound once per sweep (module docstring).

    ``__call__(y0, x0, a, v, p, p_out)`` runs the visit at corner ``(y0, x0)`` on the padded
    object with measured row ``a`` (``v``: its measured pixels or None), probe ``p`` and the
    probe's next buffer ``p_out``; it returns the amplitude error.
    """

    def __init__(
        self,
        obj: np.ndarray,
        bufs: SweepBuffers,
        prop: NearFieldPropagator,
        rule: np.ndarray,
        one: bool,
    ) -> None:
        self.obj = obj
        self.vacuum = VacuumWindow(prop.exit_shape, obj.dtype)
        self.bufs = bufs
        self.b = prop.buffer_px
        m, n = prop.detector_shape
        self.roll = (m // 2, n // 2) if self.b else (0, 0)  # b = 0: the roll rides on H
        size = prop.exit_shape[0] * prop.exit_shape[1]
        self.h = scaled_kernel(prop.kernel, size)
        self.h_conj = scaled_kernel(prop.kernel_conj, size)
        self.all_measured = kernel_module.no_mask((m, n))
        self.rule = rule
        self.one = one
        self.kern = kernel_module.kernels()
        self.near = nearfield_kernels.kernels()

    def __call__(
        self, y0: int, x0: int, a: np.ndarray, v: np.ndarray | None, p: np.ndarray, out: np.ndarray
    ) -> float:
        bufs, kern, near = self.bufs, self.kern, self.near
        fft = bufs.fft
        obj, y0, x0 = self.vacuum.window(self.obj, y0 - self.b, x0 - self.b)
        if self.one:
            kern.exit_wave1(obj, y0, x0, p, bufs.psi, *bufs.abs2_views, bufs.max_bits)
        else:
            kern.exit_wave(obj, y0, x0, p, bufs.psi, bufs.maxima)
        fft.forward()
        near.transfer(fft.wave, self.h)
        fft.inverse()
        mask = self.all_measured if v is None else v
        err = near.near_delta(fft.psi, self.b, a, mask, v is not None, *self.roll)
        fft.forward()
        near.transfer(fft.wave, self.h_conj)
        fft.inverse()
        update = kern.update1 if self.one else kern.update
        update(obj, y0, x0, p, bufs.dpsi, out, bufs.maxima, self.rule)
        self.vacuum.put_back(self.obj)
        return float(err)


class NearFieldSweep:
    """The near-field sweep on the numba backend; its DFTs are planned once per shape.

    The loop over the positions (sub-pixel shift, alternating probe buffers, the hook) is
    shared with the multislice sweep (``multislice_sweep.MultisliceSweep``), which replaces
    the visit (``make_visit``).
    """

    def __init__(self) -> None:
        self._plans = FusedSweep()  # keeps the planned ``pie_fft.WindowFFT``

    def check(self, visit: VisitModel) -> None:
        """Refuse a visit model this sweep does not run."""
        prop = visit.propagator
        assert isinstance(prop, NearFieldPropagator) and visit.n_slices == 1

    def make_visit(
        self,
        state: ReconstructionState,
        bufs: SweepBuffers,
        visit: VisitModel,
        rule: PieRule,
        one: bool,
    ) -> Callable[[int, int, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray], float]:
        """Return the compiled visit of one position (``NearFieldVisit``), bound to the sweep."""
        obj = state.object[0].numpy()
        prop = visit.propagator
        assert isinstance(prop, NearFieldPropagator)
        return NearFieldVisit(obj, bufs, prop, rule.array(kernel_module.real_dtype(obj.dtype)), one)

    def run(
        self,
        state: ReconstructionState,
        data: PatternData,
        scan: ScanWindows,
        plan: SweepPlan,
        backend: Backend,
        visit: VisitModel,
    ) -> float:
        """Run the sweep (module docstring); return the error numerator."""
        self.check(visit)
        probe = state.probe
        shifter = probe_shifter(probe, scan)
        rule = plan.rule if shifter is None else writes_step_alone(plan.rule)
        one = probe.shape[0] == 1
        bufs = SweepBuffers(probe, one, self._plans.window_fft(probe, shifter is not None, backend))
        fft = bufs.fft
        dtype = state.object.numpy().dtype
        run_visit = self.make_visit(state, bufs, visit, rule, one)
        hook_obj = state.object[0] if state.object.shape[0] == 1 else state.object
        kern = kernel_module.kernels()
        m, n = probe.shape[-2:]
        (inv_n,) = kernel_module.real_scalars(dtype, 1.0 / (m * n))
        if shifter is not None:
            spec, ry, rx = (t.numpy() for t in (shifter.spectrum, shifter.ry, shifter.rx))
        cy, cx, every, visited = scan.cy, scan.cx, plan.every, plan.visited
        probe_steps = bool(rule.update_probe)
        err = 0.0
        with closing(feed.rows(data, plan.order)) as visits:
            for count, (j, a, v) in enumerate(visits, 1):
                if shifter is not None:  # T_f P = F^-1[F(P) r_f]
                    kern.ramp_shift(spec, ry[j], rx[j], fft.spec, inv_n)
                    fft.shift()
                    p, p_out = bufs.shifted, bufs.wave  # wave is free once chi is taken
                else:
                    p, p_out = bufs.current(), bufs.other()
                err += run_visit(cy[j], cx[j], a, v, p, p_out)
                if shifter is None:
                    bufs.swap()
                elif probe_steps and bufs.maxima[0] > 0:  # F(P) += F(step) conj(r_f)
                    fft.fold()
                    kern.ramp_fold_back(spec, fft.spec, ry[j], rx[j])
                if every and (visited + count) % every == 0:
                    bufs.settle()
                    run_hook(plan, hook_obj, probe, shifter)
        bufs.settle()
        if shifter is not None:
            probe.copy_(shifter.probe())
        return err


def near_field_round_trip(
    prop: NearFieldPropagator, psi: torch.Tensor, amps: torch.Tensor, valid: torch.Tensor | None
) -> tuple[torch.Tensor, float]:
    """Return ``chi = F^-1 [conj(H) F C_b^T (Psi' - Psi)]`` ``[B, K, M', N']`` of exit waves
    ``psi`` and the summed amplitude error (a group's near-field detector step, compiled).

    ``amps``, ``valid`` ``[B, M, N]`` in detector order, as the data holds them. The
    transforms are ``torch.fft`` on the batch; ``nearfield_kernels.near_delta`` corrects each
    position's propagated window in place (module docstring of ``nearfield_kernels``); the
    values are those of ``NearFieldPropagator.adjoint(detector_delta(forward(psi)))`` to
    rounding.
    """
    wave = torch.fft.ifft2(torch.fft.fft2(psi).mul_(prop.kernel))  # [B, K, M', N']
    w = wave.numpy()
    a = np.ascontiguousarray(amps.numpy())
    m, n = prop.detector_shape
    b = prop.buffer_px
    roll = (m // 2, n // 2) if b else (0, 0)
    mask = kernel_module.no_mask((m, n)) if valid is None else np.ascontiguousarray(valid.numpy())
    near_delta = nearfield_kernels.kernels().near_delta
    err = 0.0
    for i in range(w.shape[0]):
        v = mask if valid is None else mask[i]
        err += float(near_delta(w[i], b, a[i], v, valid is not None, *roll))
    return torch.fft.ifft2(torch.fft.fft2(wave).mul_(prop.kernel_conj)), err
