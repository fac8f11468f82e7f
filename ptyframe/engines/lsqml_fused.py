"""Run LSQML's group update through a near-field propagator or several slices, fused.

The numba backend's form of ``ptyframe.engines.visit_sweeps.lsqml_visits`` (the torch
specification; tests hold the two equal in complex128): the same group update (Odstrcil,
Menzel & Guizar-Sicairos, Opt. Express 26, 3108 (2018), eqs. 12-25, with the slice chain of
``lsqml_visits``), its per-pixel passes the kernels of ``ptyframe.engines.lsqml_kernels``
and its transforms ``torch.fft`` on the batch. For a group of ``B`` positions with box
``O`` (``[S, h, w]``, vacuum outside the object), windows ``S_b`` and probes
``u_0b = T_f_b P``::

    e_s  = S_b(O_s) u_sb,  u_{s+1} = Q_s e_s           window_product, propagate
    chi  = adjoint(Psi' - Psi)                          visit_sweeps.detector_round_trip
    chi_{s-1} = Q_{s-1}^H conj(S_b(O_s)) chi_s          conj_window_product, propagate_back
    dO_s = num_s / (w_s + d_O max w_s)                  direction_sums (eqs. 24-25)
    dP   = sum_b T_-f_b[conj(S_b O_0) chi_0] / (sum_b |S_b O_0|^2 + d_P max)
    w_i  = the exit-wave change of direction i          window_product, carried through
                                                        the later slices
    a    = mean_b argmin ||chi - sum_i a_i w_ib||^2     gram, visit_sweeps.steps_from_gram

What it saves against the torch visit (same transforms): the gathered window stacks, the
complex temporaries of each product and mode sum, the per-window scatter loops, and the
stack of every exit-wave change that the step solve's batched product read (the Gram
matrix is one pass over the changes, in float64). Each direction's change of the exit
wave is formed once, from the forward pass's incident waves: the exit wave is linear in
each slice's transmission and in the probe, so ``w_i`` is exact, not a linearisation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ptyframe.engines import lsqml_kernels
from ptyframe.engines.visit import read_box
from ptyframe.engines.visit_sweeps import apply_steps, detector_round_trip, steps_from_gram
from ptyframe.physics.exitwave import MultisliceExitWave

if TYPE_CHECKING:
    from ptyframe.engines.minibatch import MinibatchEngine
    from ptyframe.engines.visit_sweeps import LsqmlSettings


def fused_group_ok(engine: MinibatchEngine) -> bool:
    """Return whether the fused group update runs: the numba backend on CPU tensors."""
    state = engine.state
    return (
        state is not None
        and engine.backend.fused
        and state.object.device.type == "cpu"
        and state.object.dtype in (torch.complex64, torch.complex128)
    )


class FusedGroup:
    """One group's boxes, corners and transforms for ``fused_lsqml_visits`` (its helpers).

    ``boxes`` ``[S, h, w]`` (numpy views of the object's box, whose corner on the padded
    object is ``origin``), ``corners`` ``[B, 2]`` on the box, ``shape`` ``(B, K, M, N)``;
    the sub-pixel ramps of the group's rows when the scan is shifted.
    """

    def __init__(
        self, engine: MinibatchEngine, idx: torch.Tensor, box: torch.Tensor, origin: tuple[int, int]
    ) -> None:
        state, waves = engine.state, engine.waves
        assert state is not None
        self.kern = lsqml_kernels.kernels()
        self.chain = engine.visit.exit_wave
        self.boxes = box.numpy()
        y0, x0 = origin  # the box's corner on the padded object (``waves.box``)
        corners = waves.corners_of(idx, torch.device("cpu")).numpy() - np.array([y0, x0])
        self.corners = np.ascontiguousarray(corners, dtype=np.int64)
        m, n = waves.window
        self.dtype = state.probe.dtype
        self.shape = (len(idx), state.probe.shape[0], m, n)
        self.n_s = box.shape[0]
        self.shifted = bool(waves.shifted)
        if self.shifted:
            self.ry, self.rx = (r.numpy() for r in waves.scan.ramps(self.dtype))
            self.rows = idx.numpy().astype(np.int64)

    def shift(self, p: torch.Tensor) -> torch.Tensor:
        """``T_f_b p`` ``[B, K, M, N]``; without sub-pixel shifts ``p`` as ``[1, K, M, N]``."""
        if not self.shifted:
            return p.unsqueeze(0)
        spec = torch.empty(self.shape, dtype=self.dtype)
        self.kern.ramp_spectra(torch.fft.fft2(p).numpy(), self.ry, self.rx, self.rows, spec.numpy())
        return torch.fft.ifft2(spec)

    def shift_back_sum(self, x: torch.Tensor) -> torch.Tensor:
        """``sum_b T_-f_b x_b`` ``[K, M, N]``."""
        if not self.shifted:
            return x.sum(0)
        spec = torch.empty(self.shape[1:], dtype=self.dtype)
        self.kern.ramp_fold(torch.fft.fft2(x).numpy(), self.ry, self.rx, self.rows, spec.numpy())
        return torch.fft.ifft2(spec)

    def propagate(self, wave: torch.Tensor, s: int, back: bool = False) -> torch.Tensor:
        """``Q_s wave`` (or ``Q_s^H wave``), contiguous."""
        chain = self.chain
        assert isinstance(chain, MultisliceExitWave)
        out = chain.propagate_back(wave, s) if back else chain.propagate(wave, s)
        return out.contiguous()

    def carry(self, s: int, change: torch.Tensor) -> None:
        """Carry the change of slice ``s``'s exit wave to the last slice's, in place."""
        for t in range(s + 1, self.n_s):
            self.kern.window_product(
                self.boxes[t], self.corners, self.propagate(change, t - 1).numpy(), change.numpy()
            )

    def forward(self, p_b: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Return the incident waves of every slice and the exit wave ``[B, K, M, N]``."""
        incident = [p_b]
        psi = torch.empty(self.shape, dtype=self.dtype)
        for s in range(self.n_s):
            self.kern.window_product(self.boxes[s], self.corners, incident[s].numpy(), psi.numpy())
            if s < self.n_s - 1:
                incident.append(self.propagate(psi, s))
        return incident, psi

    def chain_back(self, chi: torch.Tensor) -> list[torch.Tensor]:
        """Return ``chi_s`` of every slice: ``chi_{s-1} = Q^H conj(O_s) chi_s``."""
        chis = [chi.contiguous()]
        for s in range(self.n_s - 1, 0, -1):
            du = torch.empty(self.shape, dtype=self.dtype)
            self.kern.conj_window_product(self.boxes[s], self.corners, chis[0].numpy(), du.numpy())
            chis.insert(0, self.propagate(du, s - 1, back=True))
        return chis


def fused_lsqml_visits(
    engine: MinibatchEngine, cfg: LsqmlSettings, idx: torch.Tensor, update_probe: bool
) -> float:
    """Run one LSQML group through the engine's visit model (module docstring); return its
    error numerator. Same values as ``visit_sweeps.lsqml_visits`` to rounding."""
    state, visit, waves = engine.state, engine.visit, engine.waves
    assert state is not None
    b = visit.buffer_px
    y0, y1, x0, x1 = waves.box(idx)  # on the padded object
    box = read_box(state.object, y0 - b, x0 - b, y1 - y0, x1 - x0)  # [S, h, w]
    g = FusedGroup(engine, idx, box, (y0, x0))
    kern, corners, probe = g.kern, g.corners, state.probe
    incident, psi = g.forward(g.shift(probe))
    chi, err = detector_round_trip(engine, cfg, psi, idx)
    chis = g.chain_back(chi)
    n_s = g.n_s
    n_dir = n_s + int(update_probe)
    effects = torch.empty((n_dir, *g.shape), dtype=g.dtype)
    d_objs = []
    for s in range(n_s):
        num = torch.zeros(box.shape[1:], dtype=g.dtype)
        w_o = torch.zeros(box.shape[1:], dtype=box.real.dtype)
        kern.direction_sums(corners, incident[s].numpy(), chis[s].numpy(), num.numpy(), w_o.numpy())
        d_obj = num.div_(w_o.add_(float(cfg.object_reg) * float(w_o.max())))
        d_objs.append(d_obj)
        kern.window_product(d_obj.numpy(), corners, incident[s].numpy(), effects[s].numpy())
        g.carry(s, effects[s])
    d_probe = None
    if update_probe:
        x = torch.empty(g.shape, dtype=g.dtype)
        kern.conj_window_product(g.boxes[0], corners, chis[0].numpy(), x.numpy())
        w_p = torch.zeros(g.shape[-2:], dtype=box.real.dtype)
        kern.window_power_sum(g.boxes[0], corners, g.shape[-2], g.shape[-1], w_p.numpy())
        d_probe = g.shift_back_sum(x).div_(w_p.add_(float(cfg.probe_reg) * float(w_p.max())))
        kern.window_product(g.boxes[0], corners, g.shift(d_probe).numpy(), effects[n_s].numpy())
        g.carry(0, effects[n_s])
    gram = np.empty((len(idx), n_dir + 1, n_dir + 1), dtype=np.float64)
    kern.gram(effects.numpy(), chis[-1].numpy(), gram)
    steps_ab = steps_from_gram(torch.from_numpy(gram), float(cfg.step_reg))
    apply_steps(state, cfg, d_objs, d_probe, steps_ab, (y0 - b, x0 - b))
    return err
