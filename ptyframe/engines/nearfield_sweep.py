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

The object is padded by ``b`` pixels of vacuum for the sweep (``PaddedObject``), so that a
window reaching past the object reads 1 there, as ``visit.read_box`` gives; after each
update the part of the window in that border is set back to 1 (``visit.add_box`` drops
it). The sweep works on the padded copy and writes the object back at the end and before
mPIE's momentum hook (which sees the object ``[H, W]`` and the real-space probe, as in the
torch sweep). Sub-pixel positions and the alternating probe buffers are those of the far
field's ``sequential.FusedSweep``.
"""

from __future__ import annotations

from contextlib import closing

import numpy as np
import torch

from ptyframe.data import feed
from ptyframe.data.feed import PatternData
from ptyframe.engines import kernels as kernel_module
from ptyframe.engines import nearfield_kernels
from ptyframe.engines.backend import Backend
from ptyframe.engines.scan import ScanWindows
from ptyframe.engines.sequential import (
    FusedSweep,
    SweepPlan,
    _Buffers,
    _probe_shifter,
    _run_hook,
    _writes_step_alone,
)
from ptyframe.engines.visit import VisitModel
from ptyframe.physics.detector import NearFieldPropagator
from ptyframe.state import ReconstructionState


class PaddedObject:
    """The object ``[H, W]`` with a border of ``b`` pixels of vacuum, as a numpy array.

    ``array`` is the padded copy (``b = 0``: a view of the object itself); ``write_back``
    copies its interior into the object, ``read_again`` the object into its interior.
    """

    def __init__(self, obj: torch.Tensor, b: int) -> None:
        self.obj = obj.numpy()
        self.b = b
        if b == 0:
            self.array = self.obj
            return
        height, width = self.obj.shape
        self.array = np.ones((height + 2 * b, width + 2 * b), dtype=self.obj.dtype)
        self.read_again()

    def _interior(self) -> np.ndarray:
        b = self.b
        return self.array[b:-b, b:-b]

    def write_back(self) -> None:
        if self.b:
            self.obj[...] = self._interior()

    def read_again(self) -> None:
        if self.b:
            self._interior()[...] = self.obj


class NearFieldVisit:
    """One position's compiled passes, bound once per sweep (module docstring).

    ``__call__(y0, x0, a, v, p, p_out)`` runs the visit at corner ``(y0, x0)`` of the padded
    object with measured row ``a`` (``v``: its measured pixels or None), probe ``p`` and the
    probe's next buffer ``p_out``; it returns the amplitude error.
    """

    def __init__(
        self,
        padded: PaddedObject,
        bufs: _Buffers,
        prop: NearFieldPropagator,
        rule: np.ndarray,
        one: bool,
    ) -> None:
        self.obj = padded.array
        self.bufs = bufs
        self.b = prop.buffer_px
        m, n = prop.detector_shape
        self.roll = (m // 2, n // 2) if self.b else (0, 0)  # b = 0: the roll rides on H
        size = prop.exit_shape[0] * prop.exit_shape[1]
        dtype = prop.kernel.dtype
        self.h = (prop.kernel.to(torch.complex128) / size).to(dtype).numpy()
        self.h_conj = (prop.kernel_conj.to(torch.complex128) / size).to(dtype).numpy()
        self.all_measured = kernel_module.no_mask((m, n))
        self.rule = rule
        self.one = one
        self.kern = kernel_module.kernels()
        self.near = nearfield_kernels.kernels()

    def __call__(
        self, y0: int, x0: int, a: np.ndarray, v: np.ndarray | None, p: np.ndarray, out: np.ndarray
    ) -> float:
        bufs, kern, near, obj = self.bufs, self.kern, self.near, self.obj
        fft = bufs.fft
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
        m, n = p.shape[-2:]
        height, width = obj.shape
        b = self.b
        if b and (y0 < b or x0 < b or y0 + m > height - b or x0 + n > width - b):
            near.border_to_vacuum(obj, y0, x0, m, n, b)
        return float(err)


class NearFieldSweep:
    """The near-field sweep on the numba backend; its DFTs are planned once per shape."""

    def __init__(self) -> None:
        self._plans = FusedSweep()  # keeps the planned ``pie_fft.WindowFFT``

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
        prop = visit.propagator
        assert isinstance(prop, NearFieldPropagator) and visit.n_slices == 1
        probe = state.probe
        shifter = _probe_shifter(probe, scan)
        rule = plan.rule if shifter is None else _writes_step_alone(plan.rule)
        one = probe.shape[0] == 1
        bufs = _Buffers(probe, one, self._plans.window_fft(probe, shifter is not None, backend))
        fft = bufs.fft
        padded = PaddedObject(state.object[0], prop.buffer_px)
        dtype = padded.array.dtype
        run_visit = NearFieldVisit(
            padded, bufs, prop, rule.array(kernel_module.real_dtype(dtype)), one
        )
        kern = run_visit.kern
        m, n = probe.shape[-2:]
        (inv_n,) = kernel_module.real_scalars(dtype, 1.0 / (m * n))
        if shifter is not None:
            spec, ry, rx = (t.numpy() for t in (shifter.spectrum, shifter.ry, shifter.rx))
        cy, cx, every = scan.cy, scan.cx, plan.every
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
                if every and count % every == 0:
                    bufs.settle()
                    padded.write_back()
                    _run_hook(plan, state.object[0], probe, shifter)
                    padded.read_again()
        bufs.settle()
        padded.write_back()
        if shifter is not None:
            probe.copy_(shifter.probe())
        return err
