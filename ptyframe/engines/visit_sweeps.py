"""Run the fast engines' visits through a near-field propagator or several slices (torch).

The general form of the sweeps of ``ptyframe.engines.sequential`` (the PIE family) and of
LSQML's group update (``ptyframe.engines.lsqml``), with the exit-wave model and the
propagator of a ``ptyframe.engines.visit.VisitModel`` in place of ``O_r P`` and the FFT::

    windows  = read_box(O, c - b)                              [S, M', N'] (vacuum outside)
    psi      = exit_wave.forward(windows, T_f P)               [B, K, M', N']
    Psi      = propagator.forward(psi)                         [B, K, M, N]
    delta, e = detector_delta(Psi, sqrt(I), valid)             (PINE eqs. 14-15)
    chi      = propagator.adjoint(delta)                       [B, K, M', N']
    steps    = exit_wave.backward(chi, rule)                   slice by slice, last first

With the far-field propagator and one slice each reduces to its engine's plain sweep (tests
hold them equal). The frame routes a run here when its physics is not the plain far field
(``VisitModel.plain``), except on the numba backend: the PIE family's sweep runs compiled
(``nearfield_sweep`` for the near field through one slice, ``multislice_sweep`` for several
slices) and LSQML's group has a fused form (``lsqml_fused``); tests hold each equal to the
functions here.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from typing import TYPE_CHECKING, Protocol

import torch

from ptyframe.data import feed
from ptyframe.engines.lsqml_rules import poisson_step
from ptyframe.engines.minibatch import gather_windows, mode_sum, scatter_windows
from ptyframe.engines.nearfield_sweep import near_field_round_trip
from ptyframe.engines.visit import VisitModel, add_box, pie_slice_rule, read_box
from ptyframe.physics.detector import NearFieldPropagator
from ptyframe.physics.exitwave import ExitWaveCache, MultisliceExitWave
from ptyframe.physics.fft import to_centred
from ptyframe.physics.projection import detector_delta, model_modulus
from ptyframe.physics.subpixel import FourierProbe

if TYPE_CHECKING:
    from ptyframe.data.feed import PatternData
    from ptyframe.engines.minibatch import MinibatchEngine
    from ptyframe.engines.scan import ScanWindows
    from ptyframe.engines.sequential import SweepPlan
    from ptyframe.state import ReconstructionState


def sweep_visits(
    state: ReconstructionState,
    data: PatternData,
    scan: ScanWindows,
    plan: SweepPlan,
    visit: VisitModel,
) -> float:
    """Run the PIE family's sequential sweep through ``visit``; return the error numerator.

    Per position the e3PIE chain (``visit.pie_slice_rule``): each slice's window takes its
    PIE step, the first slice's incident step is the probe step (mapped back through the
    sub-pixel shift as in ``sequential.sweep_torch``). The hook (mPIE's momentum) sees the
    object ``[H, W]`` for one slice, ``[S, H, W]`` for several, and the real-space probe.
    """
    obj = state.object  # [S, H, W]
    probe = state.probe  # [K, M', N']
    m, n = probe.shape[-2:]
    b = visit.buffer_px
    shifter = FourierProbe(probe, scan.frac, scan.ramps(probe.dtype)) if scan.shifted else None
    rule = pie_slice_rule(plan.rule)
    hook_obj = obj[0] if obj.shape[0] == 1 else obj
    forward, adjoint, to_image = image_order(visit)
    err = torch.zeros((), dtype=torch.float64, device=obj.device)
    with closing(feed.tensor_rows(data, plan.order, obj.device)) as visits:
        for count, (j, a, v) in enumerate(visits, 1):
            y, x = scan.cy[j] - b, scan.cx[j] - b
            windows = read_box(obj, y, x, m, n)  # [S, M', N'] (steps are added after the chain)
            p = shifter.shifted(j) if shifter is not None else probe
            psi, cache = visit.exit_wave.forward(windows.unsqueeze(1), p.unsqueeze(0))
            dwave, e = detector_delta(forward(psi), *to_image(a, v))
            err += e[0]
            chain = visit.exit_wave.backward(adjoint(dwave), cache, rule)
            add_box(obj, chain.window_steps[:, 0], y, x)
            if plan.rule.update_probe:
                p_step = chain.probe_step[0]
                if shifter is not None:
                    shifter.add_shifted_back(j, p_step)
                else:
                    probe.add_(p_step)
            if plan.every and (plan.visited + count) % plan.every == 0 and plan.hook is not None:
                if shifter is None:
                    plan.hook(hook_obj, probe)
                else:
                    real = shifter.probe()
                    plan.hook(hook_obj, real)
                    shifter.spectrum.copy_(torch.fft.fft2(real))
    if shifter is not None:
        probe.copy_(shifter.probe())
    return float(err)


def image_order(visit: VisitModel) -> tuple[Callable, Callable, Callable]:
    """Return ``(forward, adjoint, to_image)``: the propagator's pair and what the measured
    rows pass through first.

    A near-field propagator with a buffer zone compares in the stored image's order
    (``NearFieldPropagator.forward_image``): the rows (amplitudes ``[B, M, N]`` and measured
    pixels or None) are rolled there (``fft.to_centred``, real arrays) instead of the complex
    waves to detector order and back; the modulus constraint is pixel-wise, so the steps
    are the same. Otherwise the rows stay as they are.
    """
    prop = visit.propagator
    if isinstance(prop, NearFieldPropagator) and prop.buffer_px > 0:

        def to_image(
            a: torch.Tensor, v: torch.Tensor | None
        ) -> tuple[torch.Tensor, torch.Tensor | None]:
            return to_centred(a), None if v is None else to_centred(v)

        return prop.forward_image, prop.adjoint_image, to_image

    def as_is(a: torch.Tensor, v: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return a, v

    return prop.forward, prop.adjoint, as_is


class LsqmlSettings(Protocol):
    """The fields of LSQML's config that its general visit reads (``lsqml.LsqmlConfig``)."""

    likelihood: str
    object_reg: float
    probe_reg: float
    step_reg: float
    damping: float
    probe_damping: float


def lsqml_visits(
    engine: MinibatchEngine, cfg: LsqmlSettings, idx: torch.Tensor, update_probe: bool
) -> float:
    """Run one LSQML group through the engine's visit model; return its error numerator.

    The exit-wave update of ``ptyframe.engines.lsqml`` (eqs. 12-17) at the detector, then the
    chain back with the steepest-descent directions (``physics.exitwave.gradient_rule``;
    pty-chi's multislice LSQML): slice ``s`` sees ``chi_s`` and its incident waves ``u_s``
    and gets the preconditioned direction (eqs. 24-25 with ``u_s`` for the probe)::

        dO_s = sum_b S_b^T sum_k conj(u_sbk) chi_sbk / (sum_b S_b^T sum_k |u_sbk|^2 + d_O max)

    and its own optimal step ``a_O,s`` (eqs. 22-23 on ``chi_s``); the probe's direction and
    step are solved jointly with the first slice's, as in the one-slice engine. Windows are
    cut from the object padded with vacuum (``visit.read_box``); the border's steps are
    dropped (``visit.add_box``).
    """

    state, visit = engine.state, engine.visit
    assert state is not None
    waves = engine.waves
    b = visit.buffer_px
    y0, y1, x0, x1 = waves.box(idx)  # on the padded object
    box = read_box(state.object, y0 - b, x0 - b, y1 - y0, x1 - x0)  # [S, h, w]
    probe = state.probe
    corners = waves.corners_of(idx, box.device)
    corners = corners - torch.tensor([y0, x0], device=corners.device)
    window = waves.window
    if box.shape[0] == 1:  # one slice: no second copy of the windows
        o_b = gather_windows(box[0], corners, window).unsqueeze(0)
    else:
        o_b = torch.stack([gather_windows(box[s], corners, window) for s in range(box.shape[0])])
    ramps = waves.ramps(idx, probe)
    p_b = waves.probes(probe, idx, ramps)  # [B, K, M', N']
    psi, cache = visit.exit_wave.forward(o_b, p_b)
    chi, err = detector_round_trip(engine, cfg, psi, idx)
    chis = chi_chain(visit, chi, cache)
    n_s = box.shape[0]
    d_objs, effects = [], []  # each direction and its change of the exit wave [B, K, M', N']
    for s in range(n_s):
        u_s, chi_s = cache.incident[s], chis[s]
        num = torch.zeros(box.shape[1:], dtype=box.dtype, device=box.device)
        w_o = torch.zeros(box.shape[1:], dtype=box.real.dtype, device=box.device)
        scatter_windows(num, mode_sum(u_s.conj() * chi_s), corners)
        scatter_windows(w_o, mode_sum(u_s.real.square() + u_s.imag.square()), corners)
        d_obj = num.div_(w_o.add_(float(cfg.object_reg) * float(w_o.max())))
        d_objs.append(d_obj)
        effects.append(
            _carry(visit, o_b, s, gather_windows(d_obj, corners, window).unsqueeze(1) * u_s)
        )
    d_probe = None
    if update_probe:
        o_0, chi_0 = o_b[0], chis[0]
        w_p = (o_0.real.square() + o_0.imag.square()).sum(0)
        n_p = waves.shift_back_sum(o_0.conj().unsqueeze(1) * chi_0, idx, ramps)
        d_probe = n_p.div_(w_p.add_(float(cfg.probe_reg) * float(w_p.max())))
        effects.append(_carry(visit, o_b, 0, o_0.unsqueeze(1) * waves.probes(d_probe, idx, ramps)))
    steps_ab = joint_steps(chis[-1], effects, float(cfg.step_reg))
    apply_steps(state, cfg, d_objs, d_probe, steps_ab, (y0 - b, x0 - b))
    return err


def apply_steps(
    state: ReconstructionState,
    cfg: LsqmlSettings,
    d_objs: list[torch.Tensor],
    d_probe: torch.Tensor | None,
    steps_ab: list[float],
    corner: tuple[int, int],
) -> None:
    """Add the damped steps of one LSQML group: ``O_s += d a_O,s dO_s`` on the box at
    ``corner`` (the border's part dropped, ``visit.add_box``) and ``P += d d_P a_P dP``.

    ``d_objs`` the slices' directions ``[h, w]`` (scaled in place), ``steps_ab`` their step
    sizes and, last, the probe's; ``d`` ``cfg.damping``, ``d_P`` ``cfg.probe_damping``.
    """
    damping = float(cfg.damping)
    steps = torch.stack([d.mul_(damping * a) for d, a in zip(d_objs, steps_ab, strict=False)])
    add_box(state.object, steps, *corner)
    if d_probe is not None:
        state.probe.add_(d_probe, alpha=damping * float(cfg.probe_damping) * steps_ab[-1])


def detector_round_trip(
    engine: MinibatchEngine, cfg: LsqmlSettings, psi: torch.Tensor, idx: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """Return ``chi = adjoint(Psi' - Psi)`` ``[B, K, M', N']`` of a group's exit waves and
    its error numerator (LSQML's exit-wave update at the detector, ``gaussian`` or
    ``poisson``).

    On the numba backend the near field's ``gaussian`` step runs compiled: the propagated
    window is corrected in place by ``nearfield_kernels.near_delta`` (crop, modulus
    constraint against the row read in the image's order, zero padding: one pass per
    position, ``nearfield_sweep.near_field_round_trip``) in place of the crop view, torch's
    passes of ``detector_delta``, the rolled rows and the padded copy.
    """
    visit = engine.visit
    prop = visit.propagator
    if (
        engine.backend.fused
        and cfg.likelihood == "gaussian"
        and isinstance(prop, NearFieldPropagator)
    ):
        return near_field_round_trip(prop, psi, *engine.data(idx))
    forward, adjoint, to_image = image_order(visit)
    amps, valid = to_image(*engine.data(idx))
    wave = forward(psi)
    if cfg.likelihood == "gaussian":
        delta, e = engine.detector_step(wave, amps, valid)
        err = float(e.sum())
    else:
        diff = (model_modulus(wave) - amps).abs_()
        err = float((diff if valid is None else diff * valid).sum(dtype=torch.float64))
        delta, _ = poisson_step(wave, amps.square(), valid)
    return adjoint(delta), err


def chi_chain(visit: VisitModel, chi: torch.Tensor, cache: ExitWaveCache) -> torch.Tensor:
    """Return the exit-wave change each slice sees, ``[S, B, K, M', N']``, from the last
    slice's ``chi`` (the chain of ``physics.exitwave`` with ``gradient_rule``'s incident
    step ``du_s = conj(O_s) chi_s`` carried back; LSQML forms its own directions, so the
    window steps and the probe step of the chain are not computed). One slice: ``chi``."""
    if visit.n_slices == 1:
        return chi.unsqueeze(0)

    def carry(
        s: int, window: torch.Tensor, incident: torch.Tensor, chi_s: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        del incident
        empty = chi_s.new_zeros(())
        return empty, (window.conj().unsqueeze(1) * chi_s if s else empty)  # gradient_rule's du

    return visit.exit_wave.backward(chi, cache, carry).chi


def _carry(visit: VisitModel, o_b: torch.Tensor, s: int, change: torch.Tensor) -> torch.Tensor:
    """Return the exit wave's change ``[B, K, M', N']`` from a change of slice ``s``'s exit
    ``change``: propagated and multiplied through the slices after ``s`` (linear in it)."""
    chain = visit.exit_wave
    for t in range(s + 1, o_b.shape[0]):
        assert isinstance(chain, MultisliceExitWave)
        change = o_b[t].unsqueeze(1) * chain.propagate(change, t - 1)
    return change


def joint_steps(chi: torch.Tensor, effects: list[torch.Tensor], lam: float) -> list[float]:
    """Return the group's mean least-squares steps ``a_i`` of the directions whose exit-wave
    changes are ``effects`` (LSQML eqs. 22-23 for several unknowns at once)::

        min_a || chi_b - sum_i a_i w_ib ||^2   per position b:   G a = r,
        G_ij = Re sum conj(w_i) w_j,   r_i = Re sum conj(w_i) chi

    with ``lam`` times the mean of each diagonal entry added (Tikhonov) and negative steps
    clipped to 0; the mean over the positions. With one slice and the probe this is
    ``lsqml.optimal_steps``. The slices explain the same residual together, so solving
    them jointly keeps their summed step from overshooting.
    """

    rows = [torch.view_as_real(x).reshape(chi.shape[0], -1) for x in (*effects, chi)]
    x = torch.stack(rows, dim=1)  # [B, n + 1, L]: Re sum conj(a) b = the real views' dot
    gram = torch.bmm(x, x.transpose(1, 2)).to(torch.float64)  # every pair in one pass
    return steps_from_gram(gram, lam)


def steps_from_gram(gram: torch.Tensor, lam: float) -> list[float]:
    """Return the group's mean steps ``a_i`` from each position's Gram matrix ``gram``
    ``[B, n + 1, n + 1]`` (float64) of the ``n`` exit-wave changes and the residual ``chi``
    (last): the solve of ``joint_steps`` (its docstring), shared with the fused group
    update (``ptyframe.engines.lsqml_fused``, whose kernel forms the matrix)."""
    n = gram.shape[-1] - 1
    g = gram[:, :n, :n].clone()
    r = gram[:, :n, n]
    diag = torch.diagonal(g, dim1=-2, dim2=-1)
    diag += lam * diag.mean(0)
    diag.clamp_(min=1e-30)
    a = torch.linalg.solve(g, r.unsqueeze(-1))[..., 0].clamp_min(0)
    return [float(v) for v in a.mean(0)]
