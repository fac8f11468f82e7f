"""Run the PIE family: ePIE (Maiden & Rodenburg 2009) and rPIE (Maiden, Johnson & Li 2017).

One epoch visits every position once in a random order (``visiting_order``). For position
``r`` with object window ``O_r = S_r(O)`` and probe ``P`` (both taken *before* this position's
update, as in the PINE reference code):

    psi       = O_r * P                                             (exit wave)
    Psi       = F psi
    Psi'      = sqrt(I_r) * Xi(Psi)        Xi(z) = z/|z|, Xi(0) = 1  (PINE eqs. 14-15)
    dpsi      = F^-1 Psi' - psi

ePIE (PINE paper eqs. 18-19)::

    O_r <- O_r + alpha * conj(P)   * dpsi / max|P|^2
    P   <- P   + beta  * conj(O_r) * dpsi / max|O_r|^2

rPIE (Maiden, Johnson & Li, Optica 4, 736 (2017), eq. 6 for the object; the same form with
``beta`` for the probe, which is how the PINE paper sweeps rPIE's (alpha, beta))::

    O_r <- O_r + conj(P)   * dpsi / ((1 - alpha) |P|^2   + alpha * max|P|^2)
    P   <- P   + conj(O_r) * dpsi / ((1 - beta)  |O_r|^2 + beta  * max|O_r|^2)

Extensions, each reducing to the published rule in the plain case:

* unmeasured pixels (negative stored intensity) keep the model's modulus (factor 1);
* ``K`` incoherent probe modes (Thibault & Menzel 2013): ``|Psi|`` is replaced by
  ``sqrt(sum_k |Psi_k|^2)``, the object step sums ``conj(P_k) dpsi_k`` and normalises by
  ``max sum_k |P_k|^2``, and each mode gets its own probe step;
* sub-pixel positions: the probe is Fourier-shifted by the fractional part and the probe
  step is shifted back (the shift is unitary, so this is the exact gradient mapping).

After each sweep the probe and object are rolled together by whole pixels so the probe's
intensity centre of mass sits at the window centre (as the PINE reference code does), unless
``center_probe=false``. With several ranks the sweeps run on shards and the object and probe
are averaged afterwards (data-parallel PIE variant, see ``ptyframe-mpi``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ptyframe.data.measurements import Measurements
from ptyframe.distributed.base import Distribution
from ptyframe.engines import pie_fft, pie_kernels
from ptyframe.engines.base import Engine, EpochReport, check_prior, visiting_order
from ptyframe.engines.config import PIE_RULES, PieConfig
from ptyframe.engines.prior import DenoiseStep
from ptyframe.errors import ConfigError
from ptyframe.physics.ambiguities import center_probe
from ptyframe.physics.fft import shift_ramp_factors
from ptyframe.physics.patches import check_inside, split_positions
from ptyframe.physics.projection import detector_delta
from ptyframe.physics.subpixel import FourierProbe
from ptyframe.state import ReconstructionState

if TYPE_CHECKING:
    from ptyframe.registry import BuildContext


@dataclass
class EpieConfig(PieConfig):
    """ePIE (Maiden & Rodenburg 2009; PINE paper eqs. 18-19).

    Default steps ``alpha = beta = 0.25`` (PtyLab's ePIE defaults). The former ``(1.0, 0.2)``
    fits each pattern's noise in full at every visit: on the particle film of
    ``ptyframe simulate +case=particle_film_small`` (1e5 photons, 300 sweeps, two seeds) its
    object scored FRC 0.31-0.32 at 1/2 Nyquist against 0.38 at ``(0.25, 0.25)``, as PtyLab's
    ePIE; on the full ``+case=particle_film`` 0.33 against 0.44 (PtyLab 0.435) (README,
    "ePIE/rPIE defaults").
    """

    name: str = "epie"
    alpha: float = 0.25
    beta: float = 0.25


@dataclass
class RpieConfig(PieConfig):
    """rPIE (Maiden, Johnson & Li 2017): regularised object and probe steps.

    Defaults ``alpha = 0.5``, ``beta = 2``. The object step
    ``conj(P) dpsi / ((1 - alpha)|P|^2 + alpha max|P|^2)`` is never smaller than ePIE's full
    step ``conj(P) dpsi / max|P|^2`` where the probe is brightest, for any ``alpha`` in
    (0, 1]; a smaller ``alpha`` only enlarges it in the probe's dim wings (10x at the former
    ``alpha = 0.1``). ``beta = 1`` is ePIE's full probe step; ``beta > 1`` shrinks the probe
    step where ``|O_r|^2 < max|O_r|^2`` (by up to ``1/beta``). The former ``(0.1, 1)`` refits
    each pattern's noise at every visit: it diverged on noisy data (``+experiment=lowdose``
    exploded at sweep 167). Larger ``alpha`` and ``beta`` scored better on noisy data, but
    ``beta = 5`` slowed a sparse noiseless scan (the half-set test's) and ``beta = 10``
    stalled it; ``(0.5, 2)`` keeps that one within 0.05 of the former FRC. Chosen with
    ``benchmarks/engine_tuning.py`` on cases other than the engines table's (README, "rPIE
    and minibatch PIE defaults").
    At ``alpha = beta = 1`` rPIE is ePIE at ``alpha = beta = 1`` exactly.
    """

    name: str = "rpie"
    alpha: float = 0.5
    beta: float = 2.0

    @property
    def pie_rule(self) -> str:
        return "rpie"


class PieEngine(Engine):
    """ePIE or rPIE (the config's ``pie_rule``), then the optional denoising ``prior``.

    See the module docstring for the update rules. With ``prior`` (a ``DenoiseStep``) each
    epoch ends with ``O <- (1 - rho) O + rho D(O)``: PINE (``ptyframe.engines.pine``).
    """

    def __init__(
        self,
        config: PieConfig,
        prior: DenoiseStep | None = None,
        context: BuildContext | None = None,
    ) -> None:
        super().__init__()
        if isinstance(prior, str):
            raise TypeError(
                f"PieEngine(config, {prior!r}): the rule now comes from the config "
                "(EpieConfig, RpieConfig, PineConfig.inner); call PieEngine(config)"
            )
        rule = getattr(config, "pie_rule", None)
        if rule not in PIE_RULES:
            raise ConfigError(f"{config.name}: PIE rule {rule!r}; choose epie or rpie")
        self.config = config
        self.rule = rule
        self.prior = prior
        check_prior(config, prior)
        #: Use the fused numba kernels where they apply (CPU); False forces the torch path.
        self.fused = True
        #: The run's ``deterministic`` switch (``BuildContext``): FFT plans chosen without
        #: timing (``pie_fft``), so two processes compute the same bits.
        self.deterministic = True if context is None else bool(context.deterministic)

    def backend_attrs(self) -> dict[str, str]:
        """Return the sweep's kernels and FFT for ``recon.h5`` (``Engine.backend_attrs``)."""
        state = self.state
        fused = self.fused and (state is None or pie_kernels.usable(state.object[0], state.probe))
        if not fused:
            return {"kernels": "torch", "fft": "torch"}
        return {"kernels": "numba", "fft": pie_fft.describe(self.deterministic)}

    @property
    def prefers_single_thread(self) -> bool:  # type: ignore[override]
        """Per-position loops on small arrays run fastest on one torch thread (epie_sweep.py).

        With a denoiser the sweep sets one thread itself and the convolutions use all.
        """
        return self.prior is None

    # ------------------------------------------------------------------ setup
    def prepare(
        self,
        measurements: Measurements,
        state: ReconstructionState,
        distribution: Distribution | None = None,
        seed: int = 0,
    ) -> None:
        super().prepare(measurements, state, distribution, seed)
        if state.object.shape[0] != 1:
            raise ConfigError(
                f"{self.config.name} reconstructs a single-slice object; the state has "
                f"{state.object.shape[0]} slices (use engine=autodiff for multislice)"
            )
        if measurements.window != state.window:
            raise ConfigError(
                f"patterns are {measurements.window} but the probe is {state.window}; "
                "they must match"
            )
        positions = state.positions_px[torch.as_tensor(measurements.indices)]
        check_inside(positions, state.window, tuple(state.object.shape[-2:]))
        corners, frac = split_positions(positions)
        self._cy = corners[:, 0].tolist()
        self._cx = corners[:, 1].tolist()
        self._frac = frac.to(state.object.device)
        self._shifted = (frac != 0).any(dim=1).tolist()
        self._ramps_key = None  # the sub-pixel ramps of these fractions, made on first use
        (self._amp_total,) = self.distribution.sum_scalars(measurements.amplitude_sum())
        if self._amp_total <= 0:
            raise ConfigError("the measured patterns are all zero; nothing to reconstruct")

    # ------------------------------------------------------------------ epoch
    def step(self, epoch: int) -> EpochReport:
        """Run the sweep of ``epoch`` (on one torch thread), then the prior step if due."""
        if self.prior is None:
            return self.sweep_step(epoch)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            report = self.sweep_step(epoch)
        finally:
            torch.set_num_threads(threads)
        return self.apply_prior(report)

    def sweep_step(self, epoch: int) -> EpochReport:
        """Run one PIE sweep over this rank's positions in the order of ``epoch``."""
        assert self.measurements is not None and self.state is not None, "call prepare() first"
        t0 = time.perf_counter()
        cfg = self.config
        order = visiting_order(self.measurements.n, self.seed, epoch)
        update_probe = (not cfg.fix_probe) and epoch >= int(cfg.probe_update_start)
        err = self.sweep(order.tolist(), update_probe)
        if self.distribution.size > 1:
            self.distribution.allreduce_mean_(self.state.object)
            self.distribution.allreduce_mean_(self.state.probe)
        if cfg.center_probe:
            center_probe(self.state)
        (err_sum,) = self.distribution.sum_scalars(err)
        return EpochReport(epoch, err_sum / self._amp_total, time.perf_counter() - t0)

    def sweep(self, order: list[int], update_probe: bool) -> float:
        """Update object and probe once per position in ``order``; return the error numerator.

        On a CPU with numba the three elementwise passes of each position run as fused
        kernels (``ptyframe.engines.pie_kernels``); elsewhere the same maths runs in torch
        with ``ptyframe.physics.projection.detector_delta``. Sub-pixel positions keep the
        probe as its spectrum (``ptyframe.physics.subpixel.FourierProbe``).
        """
        state = self.state
        assert state is not None
        obj = state.object[0]
        fused = self.fused and pie_kernels.usable(obj, state.probe)
        shifter = None
        if any(self._shifted):
            key = (state.probe.dtype, tuple(state.probe.shape[-2:]))
            if getattr(self, "_ramps_key", None) != key:  # made once per prepare and dtype
                self._ramps = shift_ramp_factors(self._frac, key[1], key[0])
                self._ramps_key = key
            shifter = FourierProbe(state.probe, self._frac, self._ramps)
        run = self._sweep_fused if fused else self._sweep_torch
        err = run(order, update_probe, shifter)
        if shifter is not None:
            state.probe.copy_(shifter.probe())
        return err

    def _steps(self) -> tuple[float, float, bool]:
        return float(self.config.alpha), float(self.config.beta), self.rule == "rpie"

    #: Extra factors on the object and probe steps (1, 1 for ePIE/rPIE; mPIE sets its own).
    step_sizes: tuple[float, float] = (1.0, 1.0)
    #: Call ``every_positions_hook(obj, probe)`` after every this many positions (0: never).
    every_positions: int = 0

    def every_positions_hook(self, obj: torch.Tensor, probe: torch.Tensor) -> None:
        """Modify the object ``[H, W]`` and the real-space probe ``[K, M, N]`` in place."""

    def _periodic(self, count: int, shifter: FourierProbe | None) -> None:
        """Run ``every_positions_hook`` after position number ``count`` if it is due."""
        if not self.every_positions or count % self.every_positions:
            return
        assert self.state is not None
        if shifter is None:
            self.every_positions_hook(self.state.object[0], self.state.probe)
        else:  # the probe lives as its spectrum during a sub-pixel sweep
            probe = shifter.probe()
            self.every_positions_hook(self.state.object[0], probe)
            shifter.spectrum.copy_(torch.fft.fft2(probe))

    def _sweep_fused(
        self, order: list[int], update_probe: bool, shifter: FourierProbe | None
    ) -> float:
        """The sweep with the fused numba kernels (CPU); see ``pie_kernels``.

        The transforms are the unscaled DFTs of ``pie_fft.WindowFFT`` (FFTW plans when
        pyFFTW is present), planned once per engine and window shape; the kernels apply
        the scale factors. With integer positions the probe alternates between
        ``state.probe`` and a second buffer (each update reads one and writes the other,
        which keeps the compiled loop vectorised); it is copied back into ``state.probe``
        at the end and before the ``every_positions`` hook.
        """
        state, meas = self.state, self.measurements
        assert state is not None and meas is not None
        probe = state.probe
        _, m, n = probe.shape
        alpha, beta, rpie = self._steps()
        obj_np = state.object[0].numpy()
        amps = meas.amplitudes.numpy()
        use_valid = meas.valid is not None
        valid = meas.valid.numpy() if use_valid else pie_kernels.no_mask((m, n))
        one = probe.shape[0] == 1 and not use_valid  # the single-mode kernels
        bufs = _Buffers(probe, one, self._window_fft(probe, shifter is not None))
        fft = bufs.fft
        kern = pie_kernels.kernels()
        dtype = obj_np.dtype
        inv_s, inv_n = pie_kernels.real_scalars(dtype, 1.0 / math.sqrt(m * n), 1.0 / (m * n))
        if shifter is not None:
            spec, ry, rx = (t.numpy() for t in (shifter.spectrum, shifter.ry, shifter.rx))
        rule = pie_kernels.step_rule(
            dtype, rpie, alpha, beta, update_probe, *self.step_sizes, shifter is None
        )
        maxima, psi, wave, dpsi = bufs.maxima, bufs.psi, bufs.wave, bufs.dpsi
        views, max_bits = bufs.abs2_views, bufs.max_bits
        forward, inverse = fft.forward, fft.inverse
        exit1, exit_k = kern.exit_wave1, kern.exit_wave
        modulus1, modulus_k = kern.modulus_delta1, kern.modulus_delta
        update = kern.update1 if one else kern.update
        cy, cx, every = self._cy, self._cx, self.every_positions
        err = 0.0
        for count, j in enumerate(order, 1):
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
                err += modulus1(wave, amps[j], inv_s, inv_n)
            else:
                v = valid[j] if use_valid else valid
                err += modulus_k(wave, amps[j], v, use_valid, inv_s, inv_n)
            inverse()
            update(obj_np, y0, x0, p, dpsi, p_out, maxima, rule)
            if shifter is None:
                bufs.swap()
            elif update_probe and maxima[0] > 0:  # F(P) += F(step) conj(r_f)
                fft.fold()
                kern.ramp_fold_back(spec, fft.spec, ry[j], rx[j])
            if every and count % every == 0:
                bufs.settle()
                self._periodic(count, shifter)
        bufs.settle()
        return err

    def _window_fft(self, probe: torch.Tensor, subpixel: bool) -> pie_fft.WindowFFT:
        """Return this engine's planned transforms for ``probe``'s shape (made once)."""
        fft = getattr(self, "_fft", None)
        shape, det = tuple(probe.shape), self.deterministic
        if fft is None or not fft.matches(shape, probe.dtype, subpixel, det):
            fft = pie_fft.WindowFFT(shape, probe.dtype, subpixel, deterministic=det)
            self._fft = fft
        return fft

    def _sweep_torch(
        self, order: list[int], update_probe: bool, shifter: FourierProbe | None
    ) -> float:
        """The sweep in torch (any device); the same maths as ``_sweep_fused``."""
        state, meas = self.state, self.measurements
        assert state is not None and meas is not None
        obj = state.object[0]
        probe = state.probe
        n_modes, m, n = probe.shape
        amps, valid = meas.amplitudes, meas.valid
        alpha, beta, rpie = self._steps()
        step_o, step_p = self.step_sizes
        err = torch.zeros((), dtype=torch.float64, device=obj.device)
        host = amps.device != obj.device  # patterns kept on the host: sent one at a time
        for count, j in enumerate(order, 1):
            y, x = self._cy[j], self._cx[j]
            patch = obj[y : y + m, x : x + n]
            o_old = patch.clone()
            p = shifter.shifted(j) if shifter is not None else probe
            wave = torch.fft.fft2(o_old * p, norm="ortho")  # [K, M, N]
            if host:
                a, v = meas.batch(torch.tensor([j]), obj.device)
            else:
                a, v = amps[j : j + 1], None if valid is None else valid[j : j + 1]
            dwave, e = detector_delta(wave[None], a, v)
            err += e[0]
            dpsi = torch.fft.ifft2(dwave[0], norm="ortho")  # F^-1 Psi' - psi
            # ---- object step (uses the probe before this position's probe step)
            p_abs2 = (p.real.square() + p.imag.square()).sum(0)
            grad_o = (p.conj() * dpsi).sum(0)
            p_max = float(p_abs2.max())
            if p_max > 0:
                if rpie:
                    grad_o.div_(p_abs2.mul_(1.0 - alpha).add_(alpha * p_max))
                    patch.add_(grad_o, alpha=step_o)
                else:
                    patch.add_(grad_o, alpha=step_o * alpha / p_max)
            # ---- probe step (uses the object window before this position's object step)
            if update_probe:
                o_abs2 = o_old.real.square() + o_old.imag.square()
                o_max = float(o_abs2.max())
                if o_max > 0:
                    step = o_old.conj() * dpsi  # [K, M, N]
                    if rpie:
                        step.div_(o_abs2.mul_(1.0 - beta).add_(beta * o_max)).mul_(step_p)
                    else:
                        step.mul_(step_p * beta / o_max)
                    if shifter is not None:
                        shifter.add_shifted_back(j, step)
                    else:
                        probe.add_(step)
            self._periodic(count, shifter)
        return float(err)


class _Buffers:
    """Scratch arrays of one fused sweep (numpy views of torch tensors, no copies).

    The transforms' buffers (``fft``, a ``pie_fft.WindowFFT``): ``psi``, the exit wave, then
    ``dpsi = F^-1(Psi' - Psi)`` (psi is free once ``F psi`` is taken); ``wave``: the far
    field, then ``(Psi' - Psi) / sqrt(N)``, then the sub-pixel probe step; ``shifted`` the
    sub-pixel-shifted probe (``spec`` the spectrum scratch). ``o_abs2``, ``p_abs2``: the
    squared moduli for the maxima, in ``wave``'s memory before ``F psi`` is written there;
    the probe's second buffer for integer positions (``current``/``other``/``swap``,
    ``settle`` copies it back into the probe). Sharing the memory keeps the working set of a
    128x128 position in the core's L2 cache. With ``one`` (one mode) the arrays are
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
        halves = torch.view_as_real(fft.wave_t).reshape(-1)[: 2 * m * n].view(2, m, n)
        self.o_abs2, self.p_abs2 = halves.numpy()
        real = self.o_abs2.dtype
        bits = np.uint32 if real.itemsize == 4 else np.uint64
        #: ``[max|O_r|^2, max sum_k |P_k|^2]`` of the current position, and its bit view
        self.maxima = np.zeros(2, dtype=real)
        self.max_bits = self.maxima.view(bits)
        #: ``o_abs2, p_abs2`` and their bit views (the arguments of ``exit_wave1``)
        self.abs2_views = (self.o_abs2, self.p_abs2, self.o_abs2.view(bits), self.p_abs2.view(bits))

    def current(self):  # noqa: ANN201
        """The buffer holding the current probe."""
        return self._probes[self._flip]

    def other(self):  # noqa: ANN201
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
