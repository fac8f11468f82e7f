"""Reconstruct by automatic differentiation of a forward model (Adorym, Du et al. 2021).

Every minibatch of tiles (Adorym supplement section D, "iteration") runs the forward model
(``ptyframe.physics.multislice.PtychoModel`` and its relatives), the loss of the supplement's
eq. S16 and one update per parameter group::

    L = D(I_pred, I_meas) / N_d  +  sum_i alpha_i R_i(object)
    x_g <- Optimizer_g(x_g, dL/dx_g)         for g in object, probe, positions, geometry

PINE's denoising step (``engine.rho > 0``, the registered ``prior_step`` ``denoise``,
``ptyframe.engines.prior``): after the last optimiser step of every ``denoise_every``-th epoch
from ``denoise_start``, each object unknown ``x`` (physical values) becomes
``(1 - rho) x + rho D(x)`` before the next epoch's first step; ``rho = 0`` builds no denoiser
and runs exactly the engine without it. The engine is built with its collaborators
(``AutodiffEngine(config, physics, loss, regularizers, prior)``), which
``ptyframe.compose.build_engine`` makes from the run's ``physics``, ``loss``, ``regularizers``
and ``denoiser``.

``D`` sums over the measured pixels of this rank's share of the minibatch and ``N_d`` counts
them over all ranks, so the gradients all-reduced over ranks (``Distribution.allreduce_sum_``,
data-parallel mode of supp. section G.1) equal the single-process gradient; each rank adds
``R / size``. Each group has its own optimizer (``engine.optimizers.<group>``), is switched on
or off by ``engine.refine.<group>`` (object, probe: on; positions: off) and may start late
(``engine.update_start.<group>`` epochs). Defaults: object and probe (complex transmission)
take GD steps of lr 1 on gradients divided by the Gauss-Newton diagonal
(``autodiff_precondition``: the batch average of the PIE projections, independent of the
photon count); every other group, and refractive-index objects, Adam. Which geometry
quantities exist is the forward model's choice (its ``refine_*`` options).

Minibatches: epoch ``e`` visits the tiles in the order ``visiting_order(n_tiles, seed, e)``
(several angles: angles in that order, tiles of angle ``a`` in ``default_rng([seed, e, a + 1])
.permutation``) in blocks of ``minibatch``; each rank keeps the tiles of each block it holds.
``data_error``: the PINE error ``sum | sqrt(I_pred) - sqrt(I) | / sum sqrt(I)`` over measured
pixels from each block's forward pass before its update; ``scalars["loss"]``: mean ``L``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from ptyframe.data.feed import PatternData
from ptyframe.data.measurements import Measurements
from ptyframe.distributed.base import Distribution
from ptyframe.engines.autodiff_precondition import (
    PreconditionConfig,
    curvature,
    precondition,
    supports,
)
from ptyframe.engines.base import (
    Capabilities,
    Engine,
    EpochReport,
    PriorStep,
    check_prior,
    visiting_order,
)
from ptyframe.engines.config import DenoiseSchedule, EngineConfig
from ptyframe.errors import ConfigError, DivergenceError
from ptyframe.losses.base import Loss, LsqLoss, safe_sqrt
from ptyframe.optimizers import BUILTIN as OPTIMIZERS
from ptyframe.optimizers import AdamConfig, GdConfig, Optimizer, build_optimizer
from ptyframe.physics.base import Batch, ForwardModel
from ptyframe.physics.farfield import FarFieldPtychography
from ptyframe.physics.multislice import PtychoModel, as_model
from ptyframe.physics.objects import GROUPS, Unknown
from ptyframe.regularizers.base import Regularizer
from ptyframe.state import ReconstructionState

if TYPE_CHECKING:
    from ptyframe.data.dataset import PtychoDataset
    from ptyframe.registry import Registry


@dataclass
class OptimizerGroups:
    """One optimizer config per group; None: ``DEFAULT_OPTIMIZERS[group]``.

    Not config instances as defaults: Hydra could not put ``GdConfig`` into a node typed
    ``AdamConfig`` (``+optimizer@engine.optimizers.object=gd`` would be a merge error).
    """

    object: Any = None
    probe: Any = None
    positions: Any = None
    geometry: Any = None


def preconditioned_optimizer() -> GdConfig:
    """Return the optimizer of a preconditioned group (``autodiff_precondition``) when unset:
    the full Gauss-Newton step (lr 1 = the batch average of the PIE projections)."""
    return GdConfig(lr=1.0)


#: The optimizers whose groups are preconditioned (see ``AutodiffEngine.preconditioned``).
PRECONDITIONED_OPTIMIZERS = ("gd", "momentum")

#: The optimizer of each other group when ``engine.optimizers.<group>`` is None.
DEFAULT_OPTIMIZERS: dict[str, Any] = {
    "object": lambda: AdamConfig(lr=1e-2),
    "probe": lambda: AdamConfig(lr=1e-2),
    "positions": lambda: AdamConfig(lr=1e-1),
    "geometry": lambda: AdamConfig(lr=1e-2),
}


@dataclass
class RefineFlags:
    """Which groups are refined; ``geometry``: those the physics' ``refine_*`` options mark."""

    object: bool = True
    probe: bool = True
    positions: bool = False
    geometry: bool = True


@dataclass
class UpdateStart:
    """First epoch at which each group is updated."""

    object: int = 0
    probe: int = 0
    positions: int = 0
    geometry: int = 0


@dataclass
class AutodiffConfig(DenoiseSchedule, EngineConfig):
    """Minibatch optimisation of any forward model by automatic differentiation (Adorym)."""

    name: str = "autodiff"
    minibatch: int = 32
    optimizers: OptimizerGroups = field(default_factory=OptimizerGroups)
    refine: RefineFlags = field(default_factory=RefineFlags)
    update_start: UpdateStart = field(default_factory=UpdateStart)
    precondition: PreconditionConfig = field(default_factory=PreconditionConfig)

    def __post_init__(self) -> None:
        super().__post_init__()  # epochs, rho, denoise_every, denoise_start
        if int(self.minibatch) < 1:
            raise ConfigError(f"autodiff.minibatch = {self.minibatch} must be >= 1")
        for g in GROUPS:
            if int(getattr(self.update_start, g)) < 0:
                raise ConfigError(f"autodiff.update_start.{g} must be >= 0")


class AutodiffEngine(Engine):
    """Adorym-style engine; see the module docstring."""

    config: AutodiffConfig

    capabilities: ClassVar[Capabilities] = Capabilities(
        positions=True,
        propagators=("farfield", "nearfield"),
        slices=True,
        prior="after_epoch",
        single_thread=True,
    )

    @property
    def prefers_single_thread(self) -> bool:
        """Its small batched ops run fastest on one torch thread, with a denoiser too."""
        return True

    def __init__(
        self,
        config: AutodiffConfig | None = None,
        physics: ForwardModel | FarFieldPtychography | None = None,
        loss: Loss | None = None,
        regularizers: list[Regularizer] | None = None,
        prior: PriorStep | None = None,
        registry: Registry | None = None,
    ) -> None:
        """Optimise ``physics`` (a forward model; None: far field) under ``loss`` (None: LSQ).

        ``regularizers``: terms ``R_i(phase, absorption)`` added to the loss; ``prior``: the
        denoising step after each epoch; ``registry``: where the groups' optimizers are
        looked up by name (None: the built-in ones).
        """
        super().__init__()
        self.config = config or AutodiffConfig()
        self.prior = prior
        check_prior(self.config, prior)
        self.registry = registry
        self.model = as_model(physics)
        self.loss: Loss = loss or LsqLoss()
        self.regularizers = list(regularizers or [])
        self.wants_all_angles = self.model.multi_angle
        self.optimizers: dict[str, Optimizer] = {}
        self._pending: dict[str, Any] | None = None

    # ------------------------------------------------------------------ set-up
    def init_state(self, state: ReconstructionState, dataset: PtychoDataset) -> ReconstructionState:
        """Reshape the runner's state for the forward model (slices, volumes, probes)."""
        return self.model.init_state(state, dataset)

    def prepare(
        self,
        measurements: PatternData | list[Measurements],
        state: ReconstructionState,
        distribution: Distribution | None = None,
        seed: int = 0,
    ) -> None:
        given = list(measurements) if isinstance(measurements, (list, tuple)) else [measurements]
        meas = [m for m in given if isinstance(m, Measurements)]
        if len(meas) != len(given):  # autodiff does not declare streams
            raise ConfigError("engine=autodiff reads its patterns in memory: set data.stream=false")
        if not meas:
            raise ConfigError("autodiff: no measurements to reconstruct from")
        super().prepare(meas[0], state, distribution, seed)
        self.meas = meas
        geom = meas[0].geometry
        b = self.model.buffer_px
        if any(tuple(w + 2 * b for w in m.window) != state.window for m in meas):
            raise ConfigError(
                f"patterns are {meas[0].window}, the probe {state.window}: must match"
                + (f" (plus the buffer, {b} px on every side)" if b else "")
            )
        n_angles = max(len(geom.theta_rad), 1 + max(m.angle for m in meas))
        self.model.setup(geom, n_angles)
        self.unknowns: dict[str, Unknown] = self.model.unknowns(state)
        self._make_params()
        self._rows = [np.full(geom.n_tiles, -1, dtype=np.int64) for _ in meas]
        for rows, m in zip(self._rows, meas, strict=True):
            rows[np.asarray(m.indices)] = np.arange(m.n)  # file tile -> row (-1: not held)
        self._counts = [_valid_counts(m) for m in meas]
        (self._amp_total,) = self.distribution.sum_scalars(sum(m.amplitude_sum() for m in meas))
        if self._amp_total <= 0:
            raise ConfigError("the measured patterns are all zero; nothing to reconstruct")
        if self._pending is not None:
            self.load_state_dict(self._pending)

    #: Every angle's patterns at once (a ``multi_angle`` model reads them all).
    prepare_angles = prepare

    def _make_params(self) -> None:
        self.params: dict[str, torch.Tensor] = {}
        self.scales: dict[str, float] = {}
        trainable: dict[str, list[str]] = {g: [] for g in GROUPS}
        for name, u in self.unknowns.items():
            train = (not u.fixed) and bool(getattr(self.config.refine, u.group))
            self.scales[name] = float(u.scale)
            p = (u.value.detach() / u.scale).clone()
            self.params[name] = p.requires_grad_(train)
            if train:
                trainable[u.group].append(name)
        self.group_names = {g: names for g, names in trainable.items() if names}
        self._pc_names = {
            n for g in self.group_names if self.preconditioned(g) for n in self.group_names[g]
        }
        self.optimizers = {
            g: self._maker(self.group_config(g))([self.params[n] for n in names])
            for g, names in self.group_names.items()
        }

    def preconditioned(self, group: str) -> bool:
        """Return whether ``group``'s gradients are divided by the Gauss-Newton diagonal.

        Only for ``gd`` and ``momentum`` (unset: ``gd``), whose steps scale with the
        gradient; Adam normalises it away, and CG/L-BFGS/SciPy evaluate raw gradients in
        their line searches.
        """
        names = getattr(self, "group_names", {}).get(group, [group])
        if not (bool(self.config.precondition.enabled) and supports(self.model, names)):
            return False
        cfg = getattr(self.config.optimizers, group)
        name = "gd" if cfg is None else (cfg["name"] if isinstance(cfg, dict) else cfg.name)
        return name in PRECONDITIONED_OPTIMIZERS

    def group_config(self, group: str) -> Any:
        """Return the optimizer config of ``group`` (its default when unset)."""
        cfg = getattr(self.config.optimizers, group)
        if cfg is not None:
            return cfg
        return (
            preconditioned_optimizer()
            if self.preconditioned(group)
            else DEFAULT_OPTIMIZERS[group]()
        )

    def _maker(self, cfg: Any) -> Any:
        if self.registry is not None:
            return self.registry.build("optimizer", cfg)
        if not hasattr(cfg, "name") or isinstance(cfg, dict):
            cfg = OPTIMIZERS[cfg["name"]][0](**dict(cfg))
        return build_optimizer(cfg)

    def values(self) -> dict[str, torch.Tensor]:
        """Return the physical values ``param * scale`` (differentiable) by name."""
        return {
            n: (p if self.scales[n] == 1.0 else p * self.scales[n]) for n, p in self.params.items()
        }

    # ------------------------------------------------------------------ one minibatch
    def _plan(self, epoch: int) -> list[tuple[int, np.ndarray]]:
        n_tiles = self.meas[0].geometry.n_tiles
        bs = int(self.config.minibatch)
        if len(self.meas) == 1:
            orders = [(0, visiting_order(n_tiles, self.seed, epoch))]
        else:
            orders = []
            for i in visiting_order(len(self.meas), self.seed, epoch):
                rng = np.random.default_rng([self.seed, epoch, self.meas[i].angle + 1])
                orders.append((int(i), rng.permutation(n_tiles)))
        return [(i, o[s : s + bs]) for i, o in orders for s in range(0, n_tiles, bs)]

    def _batch(self, i: int, tiles: np.ndarray) -> Batch:
        """Return the block's tiles this rank holds (possibly none) as a ``Batch``."""
        m = self.meas[i]
        held = tiles[self._rows[i][tiles] >= 0]
        return Batch(m.angle, torch.as_tensor(held, device=self._device()))

    def _device(self) -> torch.device:
        """The device of the unknowns (the patterns may stay on the host)."""
        assert self.state is not None
        return self.state.object.device

    def _precondition(
        self, grads: dict[str, torch.Tensor], i: int, tiles: np.ndarray, count: float
    ) -> None:
        """Divide the preconditioned groups' gradients by the Gauss-Newton diagonal."""
        assert isinstance(self.model, PtychoModel)  # ``supports`` chose preconditioning
        v = {n: p.detach() * self.scales[n] for n, p in self.params.items()}
        curv = {
            n: c
            for n, c in curvature(self.model, v, self._batch(i, tiles)).items()
            if n in grads and n in self._pc_names
        }
        if self.distribution.size > 1:
            for h, _ in curv.values():
                self.distribution.allreduce_sum_(h)
        factor = float(self.loss.curvature) / count
        precondition(grads, curv, self.scales, factor, self.config.precondition)

    def _data_term(
        self,
        v: dict[str, torch.Tensor],
        i: int,
        tiles: np.ndarray,
        count: float,
        err: list[float] | None = None,
    ) -> torch.Tensor:
        """Return this rank's ``D / N_d`` for the block; add the data error to ``err``."""
        rows = self._rows[i][tiles]
        keep = rows >= 0
        if not keep.any():
            return torch.zeros((), dtype=torch.float64)
        m = self.meas[i]
        batch = Batch(m.angle, torch.as_tensor(tiles[keep], device=self._device()))
        pred = self.model.predict(v, batch)
        amps, valid = m.batch(torch.as_tensor(rows[keep]), pred.device)
        if err is not None:
            with torch.no_grad():
                d = (safe_sqrt(pred) - amps).abs()
                err[0] += float((d if valid is None else d * valid).sum(dtype=torch.float64))
        return self.loss(pred, amps, valid) / count

    def _reg_term(self, v: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.regularizers:
            return torch.zeros((), dtype=torch.float64)
        phase, absorption = self.model.fields(v)
        total = self.regularizers[0](phase, absorption)
        for r in self.regularizers[1:]:
            total = total + r(phase, absorption)
        return total

    def _grads(self, total: torch.Tensor, names: list[str]) -> list[torch.Tensor]:
        ps = [self.params[n] for n in names]
        gs: Sequence[torch.Tensor | None] = (
            torch.autograd.grad(total, ps, allow_unused=True) if total.requires_grad else ps
        )
        out = [
            g if g is not None and total.requires_grad else torch.zeros_like(p)
            for p, g in zip(ps, gs, strict=True)
        ]
        if self.distribution.size > 1:
            for g in out:
                self.distribution.allreduce_sum_(torch.view_as_real(g) if g.is_complex() else g)
        return out

    def _closure(self, i: int, tiles: np.ndarray, count: float, names: list[str]) -> Any:
        size = self.distribution.size

        def closure(need_grad: bool) -> tuple[float, list[torch.Tensor] | None]:
            with torch.enable_grad() if need_grad else torch.no_grad():
                v = self.values()
                local = self._data_term(v, i, tiles, count) + self._reg_term(v) / size
            (f,) = self.distribution.sum_scalars(float(local.detach()))
            return f, (self._grads(local, names) if need_grad else None)

        return closure

    # ------------------------------------------------------------------ epoch
    def step(self, epoch: int) -> EpochReport:
        """Run one epoch of minibatch updates; see the module docstring."""
        assert self.state is not None, "call prepare() first"
        t0 = time.perf_counter()
        size = self.distribution.size
        if self.regularizers:
            with torch.no_grad():
                fields = self.model.fields(self.values())
                for r in self.regularizers:
                    r.update(*fields)
        self.loss.set_epoch(epoch)  # e.g. the Poisson loss's LSQ warm start
        plan = self._plan(epoch)
        counts = torch.tensor(
            [float(self._counts[i][self._rows[i][t]].sum()) for i, t in plan], dtype=torch.float64
        )
        if size > 1:
            self.distribution.allreduce_sum_(counts)
        active = [g for g in self.group_names if epoch >= int(getattr(self.config.update_start, g))]
        err = [0.0]
        data_sum = reg_sum = 0.0
        for b, (i, tiles) in enumerate(plan):
            count = max(float(counts[b]), 1.0)
            v = self.values()
            data = self._data_term(v, i, tiles, count, err)
            reg = self._reg_term(v)
            total = data + reg / size
            data_sum += float(data.detach())
            reg_sum += float(reg.detach())
            names = [n for g in active for n in self.group_names[g]]
            grads = dict(zip(names, self._grads(total, names), strict=False)) if names else {}
            if not active:
                continue
            if self._pc_names.intersection(names):
                self._precondition(grads, i, tiles, count)
            need_f = any(self.optimizers[g].needs_closure for g in active)
            f = float(total.detach())
            if need_f:
                (f,) = self.distribution.sum_scalars(f)
            if not math.isfinite(f):
                raise DivergenceError(
                    f"autodiff: the loss became non-finite at epoch {epoch}; lower the "
                    "learning rates (engine.optimizers.<group>.lr)"
                )
            for g in active:
                opt = self.optimizers[g]
                gn = self.group_names[g]
                closure = self._closure(i, tiles, count, gn) if opt.needs_closure else None
                opt.step([grads[n] for n in gn], f, closure)
            self._project_and_store(names)
        self._denoise(epoch)
        with torch.no_grad():
            v = self.values()
            if self.model.end_epoch(v, self.state, epoch):
                self._project_and_store(list(self.params))
            self.model.store(v, self.state)
        err_sum, data_sum = self.distribution.sum_scalars(err[0], data_sum)
        if not math.isfinite(data_sum):
            raise DivergenceError(
                f"autodiff: the loss became non-finite at epoch {epoch}; lower the learning rates"
            )
        nb = max(len(plan), 1)
        scalars = {"loss": (data_sum + reg_sum) / nb, "data_loss": data_sum / nb}
        scalars["reg_loss"] = reg_sum / nb
        return EpochReport(epoch, err_sum / self._amp_total, time.perf_counter() - t0, scalars)

    def _denoise(self, epoch: int) -> None:
        """Apply the prior step to every object unknown (physical values), if due."""
        if self.prior is None or not self.prior.active(epoch):
            return
        names = self.group_names.get("object", [])
        with torch.no_grad():
            for n in names:
                phys = self.params[n] * self.scales[n]
                self.prior.mix(phys)
                self.params[n].copy_(phys / self.scales[n])
        self._project_and_store(names)

    def _project_and_store(self, names: list[str]) -> None:
        """Apply each unknown's constraint and copy the values into the state tensors."""
        with torch.no_grad():
            for n in names:
                u, p, s = self.unknowns[n], self.params[n], self.scales[n]
                phys = p * s if s != 1.0 else p
                if u.project is not None:
                    u.project(phys)
                    if s != 1.0:
                        p.copy_(phys / s)
                u.value.copy_(phys.to(u.value.dtype))

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Return optimizer buffers, regularizer state and the unknowns' scales."""
        return {
            "optimizers": {g: o.state_dict() for g, o in self.optimizers.items()},
            "regularizers": [r.state_dict() for r in self.regularizers],
            "scales": dict(getattr(self, "scales", {})),
            "prior": self.prior.state_dict() if self.prior is not None else {},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (before or after ``prepare``)."""
        if not hasattr(self, "params"):
            self._pending = state
            return
        self._pending = None
        if self.prior is not None:
            self.prior.load_state_dict(state.get("prior", {}))
        with torch.no_grad():
            for n, s in state.get("scales", {}).items():
                if n in self.params and s != self.scales[n]:
                    self.scales[n] = float(s)
                    self.params[n].copy_(self.unknowns[n].value / s)
        for g, sd in state.get("optimizers", {}).items():
            if g in self.optimizers:
                self.optimizers[g].load_state_dict(sd)
        for r, sd in zip(self.regularizers, state.get("regularizers", []), strict=False):
            r.load_state_dict(sd)


def _valid_counts(m: Measurements) -> np.ndarray:
    """Return the measured-pixel count of every tile, and 0 for 'not held' (index -1)."""
    per_tile = (
        m.valid.sum(dim=(-2, -1))
        if m.valid is not None
        else torch.full((m.n,), m.window[0] * m.window[1])
    )
    return np.append(per_tile.to(torch.float64).cpu().numpy(), 0.0)
