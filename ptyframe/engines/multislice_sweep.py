"""Run the PIE family's multislice sweep (e3PIE) with fused numba kernels and planned DFTs.

The compiled form of ``ptyframe.engines.visit_sweeps.sweep_visits`` (the specification,
tests hold the two equal) for ``S > 1`` slices (``physics.exitwave.MultisliceExitWave``),
through the far field or the near field (``NearFieldPropagator``, buffer ``b``). Per
position with corner ``c`` on the padded object, the (shifted) probe ``P`` ``[K, M', N']``
and the slices' windows ``O_s`` at ``c``, the e3PIE chain of Maiden, Humphry & Rodenburg,
J. Opt. Soc. Am. A 29, 1606 (2012)::

    e_0     = O_0 P                          kernels.exit_wave(1)        (maxima of slice 0)
    u_s     = D^H (Q_{s-1} / N') D e_{s-1}   D, transfer, D^H            s = 1 .. S-1
    e_s     = O_s u_s                        multislice_kernels.slice_exit (u_s kept)
    chi     = detector step on e_{S-1}       far field: D, modulus_delta(1), D^H
                                             near field: as ``nearfield_sweep`` (3 + 3 DFTs)
    s = S-1 .. 1:
      O_s, du_s  <- PIE step with chi        multislice_kernels.slice_update (du_s over chi)
      chi        <- D^H (conj Q_{s-1} / N') D du_s
    O_0, P  <- PIE step with chi             kernels.update(1)           (the probe step)

with ``D``, ``D^H`` the unscaled DFTs of ``pie_fft.WindowFFT`` (the propagations run in
place on its ``psi`` buffer: ``forward``, the transfer kernel on ``wave``, ``inverse``) and
``Q_s`` the gap's transfer function (``MultisliceExitWave.transfer``). Each slice's step is
``visit.pie_slice_rule``'s: the rule's coefficients (``rules.pie_coefficients``, compiled),
the incident wave in the probe's place, every slice after the first taking its incident
step (the rule with the probe step on). ``2 (S - 1)`` transforms for the gaps plus the
detector's (2 far, 6 near), and 2 for a sub-pixel probe's shift and fold-back.

Windows leaving an object slice (near field's buffer) take a ``nearfield_sweep.VacuumWindow``
per slice. mPIE's momentum hook sees the object ``[S, H, W]`` and the real-space probe; the
loop over the positions (sub-pixel shift, alternating probe buffers) is
``nearfield_sweep.NearFieldSweep.run``'s.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ptyframe.engines import kernels as kernel_module
from ptyframe.engines import multislice_kernels, nearfield_kernels
from ptyframe.engines.nearfield_sweep import NearFieldSweep, VacuumWindow, scaled_kernel
from ptyframe.engines.rules import PieRule
from ptyframe.engines.sequential import SweepBuffers
from ptyframe.engines.visit import VisitModel
from ptyframe.physics.detector import NearFieldPropagator
from ptyframe.physics.exitwave import MultisliceExitWave
from ptyframe.state import ReconstructionState


class SliceVisit:
    """One position's compiled e3PIE chain, bound once per sweep (module docstring).

    ``__call__(y0, x0, a, v, p, p_out)`` as ``nearfield_sweep.NearFieldVisit``'s: corner on
    the padded object, measured row ``a`` (``v``: its measured pixels or None), probe ``p``
    and the probe's next buffer ``p_out``; returns the amplitude error.
    """

    def __init__(
        self,
        objs: np.ndarray,
        bufs: SweepBuffers,
        visit: VisitModel,
        rule: PieRule,
        one: bool,
    ) -> None:
        chain = visit.exit_wave
        assert isinstance(chain, MultisliceExitWave)
        n_slices = chain.n_slices
        self.objs = objs  # [S, H, W]
        self.bufs = bufs
        self.one = one
        self.b = visit.buffer_px
        fft = bufs.fft
        shape = fft.psi.shape  # [K, M', N']
        size = shape[-2] * shape[-1]
        dtype = objs.dtype
        real = kernel_module.real_dtype(dtype)
        self.vacuum = [VacuumWindow(shape[-2:], dtype) for _ in range(n_slices)]
        self.q = [scaled_kernel(chain.transfer(s)[0], size) for s in range(n_slices - 1)]
        self.q_conj = [scaled_kernel(chain.transfer(s)[1], size) for s in range(n_slices - 1)]
        #: the waves incident on slices 1 .. S-1 (row 0 unused: slice 0's is the probe)
        self.incident = np.empty((n_slices, *shape), dtype=dtype)
        #: ``[max |O_s|^2, max sum_k |u_s|^2]`` of slices 1 .. S-1 (slice 0's: ``bufs.maxima``)
        self.maxima: np.ndarray = np.zeros((n_slices, 2), dtype=real)
        self.max_bits = self.maxima.view(bufs.max_bits.dtype)  # one mode: the bit maxima
        self.rule = rule.array(real)
        self.slice_rule = replace(rule, update_probe=True, accumulate=True).array(real)
        self.all_measured = kernel_module.no_mask(shape[-2:])
        self.inv_s, self.inv_n = kernel_module.real_scalars(
            dtype, 1.0 / math.sqrt(size), 1.0 / size
        )
        prop = visit.propagator
        self.near_prop = prop if isinstance(prop, NearFieldPropagator) else None
        if self.near_prop is not None:
            m, n = self.near_prop.detector_shape
            self.roll = (m // 2, n // 2) if self.b else (0, 0)
            self.h = scaled_kernel(self.near_prop.kernel, size)
            self.h_conj = scaled_kernel(self.near_prop.kernel_conj, size)
            self.all_measured = kernel_module.no_mask((m, n))
        self.kern = kernel_module.kernels()
        self.near = nearfield_kernels.kernels()
        self.ms = multislice_kernels.kernels()

    def propagate(self, q: np.ndarray) -> None:
        """``psi <- D^H q D psi`` on the transforms' buffer (``q`` scaled by ``1 / N'``)."""
        fft = self.bufs.fft
        fft.forward()
        self.near.transfer(fft.wave, q)
        fft.inverse()

    def detector(self, a: np.ndarray, v: np.ndarray | None) -> float:
        """Replace the exit wave in ``psi`` by ``chi`` (the detector step); return the error."""
        bufs, fft, kern = self.bufs, self.bufs.fft, self.kern
        mask = self.all_measured if v is None else v
        if self.near_prop is not None:
            self.propagate(self.h)
            err = self.near.near_delta(fft.psi, self.b, a, mask, v is not None, *self.roll)
            self.propagate(self.h_conj)
            return float(err)
        fft.forward()
        if self.one and v is None:
            err = kern.modulus_delta1(bufs.wave, a, self.inv_s, self.inv_n)
        else:
            err = kern.modulus_delta(fft.wave, a, mask, v is not None, self.inv_s, self.inv_n)
        fft.inverse()
        return float(err)

    def __call__(
        self, y0: int, x0: int, a: np.ndarray, v: np.ndarray | None, p: np.ndarray, out: np.ndarray
    ) -> float:
        bufs, kern, ms = self.bufs, self.kern, self.ms
        psi = bufs.fft.psi  # [K, M', N']
        n_slices = len(self.vacuum)
        corners = []
        for s in range(n_slices):
            obj, ys, xs = self.vacuum[s].window(self.objs[s], y0 - self.b, x0 - self.b)
            corners.append((obj, ys, xs))
            if s == 0:
                if self.one:
                    kern.exit_wave1(obj, ys, xs, p, bufs.psi, *bufs.abs2_views, bufs.max_bits)
                else:
                    kern.exit_wave(obj, ys, xs, p, bufs.psi, bufs.maxima)
            else:
                self.propagate(self.q[s - 1])
                if self.one:  # |O_s|^2, |u_s|^2 in wave's memory (free after the inverse)
                    keep = self.incident[s, 0]
                    ms.slice_exit1(obj, ys, xs, bufs.psi, keep, *bufs.abs2_views, self.max_bits[s])
                else:
                    ms.slice_exit(obj, ys, xs, psi, self.incident[s], self.maxima[s])
        err = self.detector(a, v)
        for s in range(n_slices - 1, 0, -1):
            obj, ys, xs = corners[s]
            if self.one:
                u, d = self.incident[s, 0], bufs.psi
                ms.slice_update1(obj, ys, xs, u, d, self.maxima[s], self.slice_rule)
            else:
                u, d = self.incident[s], psi
                ms.slice_update(obj, ys, xs, u, d, self.maxima[s], self.slice_rule)
            self.vacuum[s].put_back(self.objs[s])
            self.propagate(self.q_conj[s - 1])
        obj, ys, xs = corners[0]
        update = kern.update1 if self.one else kern.update
        update(obj, ys, xs, p, bufs.dpsi, out, bufs.maxima, self.rule)
        self.vacuum[0].put_back(self.objs[0])
        return err


class MultisliceSweep(NearFieldSweep):
    """The multislice sweep on the numba backend (module docstring); DFTs planned once."""

    def check(self, visit: VisitModel) -> None:
        """Refuse a visit model this sweep does not run (one slice: the other sweeps)."""
        assert isinstance(visit.exit_wave, MultisliceExitWave) and visit.n_slices > 1

    def make_visit(
        self,
        state: ReconstructionState,
        bufs: SweepBuffers,
        visit: VisitModel,
        rule: PieRule,
        one: bool,
    ) -> SliceVisit:
        """Return the compiled chain of one position (``SliceVisit``), bound to the sweep."""
        return SliceVisit(state.object.numpy(), bufs, visit, rule, one)
