"""Run the PIE family: ePIE (Maiden & Rodenburg 2009) and rPIE (Maiden, Johnson & Li 2017).

One epoch visits every position once in a random order (``visiting_order``) and takes, at
each, the steps of ``ptyframe.engines.rules.pie_update`` (the rule, with its equations)
after the Fourier constraint; ``ptyframe.engines.sequential`` runs that sweep on the torch
or the numba backend. Extensions, each reducing to the published rule in the plain case:

* unmeasured pixels (negative stored intensity) keep the model's modulus (factor 1);
* ``K`` incoherent probe modes (Thibault & Menzel 2013): ``|Psi|`` is replaced by
  ``sqrt(sum_k |Psi_k|^2)``, the object step sums ``conj(P_k) dpsi_k`` and normalises by
  ``max sum_k |P_k|^2``, and each mode gets its own probe step;
* sub-pixel positions: the probe is Fourier-shifted by the fractional part and the probe
  step is shifted back (the shift is unitary, so this is the exact gradient mapping);
* near field and multislice (``physics=nearfield | multislice``): the visit's exit wave
  goes through the run's propagator and slices (``ptyframe.engines.visit``) and each slice
  takes the rule's step, the first slice's incident-wave step being the probe's (e3PIE,
  Maiden, Humphry & Rodenburg 2012; ``ptyframe.engines.visit_sweeps``); both also run on
  the numba backend (``ptyframe.engines.nearfield_sweep`` for the near field through one
  slice, ``ptyframe.engines.multislice_sweep`` for several slices, far or near field).

The epoch frame (``ptyframe.engines.frame``) does the rest of the epoch: the rank average
(data-parallel PIE, see ``ptyframe-mpi``), the probe centring (as the PINE reference code
does) and, for PINE, the denoising step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ptyframe.engines.base import Capabilities, PriorStep, check_prior
from ptyframe.engines.config import PIE_RULES, PieConfig
from ptyframe.engines.frame import FastEngine
from ptyframe.engines.multislice_sweep import MultisliceSweep
from ptyframe.engines.nearfield_sweep import NearFieldSweep
from ptyframe.engines.rules import PieRule
from ptyframe.engines.sequential import FusedSweep, SweepPlan, sweep_torch
from ptyframe.engines.visit import check_physics
from ptyframe.engines.visit_sweeps import sweep_visits
from ptyframe.errors import ConfigError

if TYPE_CHECKING:
    from ptyframe.registry import BuildContext


@dataclass
class EpieConfig(PieConfig):
    """ePIE (Maiden & Rodenburg 2009; PINE paper eqs. 18-19).

    Default steps ``alpha = beta = 0.25`` (PtyLab's ePIE defaults): smaller steps than the
    PINE reference code's ``(1.0, 0.2)``, which fit each pattern's noise in full at every
    visit. Chosen with ``benchmarks/engine_tuning.py`` on cases other than the engines
    table's (the manual's results pages hold the figures).
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
    (0, 1]; a smaller ``alpha`` only enlarges it in the probe's dim wings. ``beta = 1`` is
    ePIE's full probe step; ``beta > 1`` shrinks the probe step where
    ``|O_r|^2 < max|O_r|^2`` (by up to ``1/beta``). Small ``alpha`` and ``beta`` refit each
    pattern's noise at every visit and can diverge on noisy data; very large ``beta`` stalls
    the probe on sparse scans. Chosen with ``benchmarks/engine_tuning.py`` on cases other than
    the engines table's. At ``alpha = beta = 1`` rPIE is ePIE at ``alpha = beta = 1`` exactly.
    """

    name: str = "rpie"
    alpha: float = 0.5
    beta: float = 2.0

    @property
    def pie_rule(self) -> str:
        return "rpie"


class PieEngine(FastEngine):
    """ePIE or rPIE (the config's ``pie_rule``), then the optional denoising ``prior``.

    See the module docstring. With ``prior`` (a ``DenoiseStep``) each epoch ends with
    ``O <- (1 - rho) O + rho D(O)``: PINE (``ptyframe.engines.pine``).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        propagators=("farfield", "nearfield"),
        slices=True,
        positions=True,
        probe_variation=True,
        flux=True,
        prior="after_epoch",
        single_thread=True,
        backends=("torch", "numba"),
        streams=True,
    )
    fftw_sweep = True
    numba_near_field = True
    numba_multislice = True
    config: PieConfig

    def __init__(
        self,
        config: PieConfig,
        prior: PriorStep | None = None,
        context: BuildContext | None = None,
        physics: Any = None,
    ) -> None:
        """``physics``: the run's forward model (far field, near field, multislice; None:
        far field), read for the visit's propagator and slices (``ptyframe.engines.visit``)."""
        super().__init__(context)
        check_physics(config.name, physics)
        self.physics = physics
        rule = config.pie_rule
        if rule not in PIE_RULES:
            raise ConfigError(f"{config.name}: PIE rule {rule!r}; choose epie or rpie")
        self.config = config
        self.prior = prior
        check_prior(config, prior)
        self._fused = FusedSweep()
        self._near = NearFieldSweep()
        self._slices = MultisliceSweep()

    def rule(self, update_probe: bool) -> PieRule:
        """Return the sweep's rule (``ptyframe.engines.rules``) from the config."""
        cfg = self.config
        return PieRule(
            cfg.pie_rule == "rpie", float(cfg.alpha), float(cfg.beta), 1.0, 1.0, update_probe
        )

    def plan(self, epoch: int, update_probe: bool) -> SweepPlan:
        """Return what the sweep of ``epoch`` does (mPIE adds its momentum hook)."""
        order = self.visiting_order(epoch).tolist()
        return SweepPlan(order, self.rule(update_probe), hooks=self.hooks)

    def sweep(self, epoch: int, update_probe: bool) -> float:
        """Run one sequential sweep on the resolved backend (``ptyframe.engines.sequential``)."""
        assert self.state is not None and self.measurements is not None
        plan = self.plan(epoch, update_probe)
        if not self.visit.plain:  # near field or slices: the general visit
            if self.backend.fused:  # compiled: several slices, or the near field through one
                sweep = self._slices if self.visit.multislice else self._near
                return sweep.run(
                    self.state, self.measurements, self.scan, plan, self.backend, self.visit
                )
            return sweep_visits(self.state, self.measurements, self.scan, plan, self.visit)
        if self.backend.fused:
            return self._fused.run(self.state, self.measurements, self.scan, plan, self.backend)
        return sweep_torch(self.state, self.measurements, self.scan, plan)
