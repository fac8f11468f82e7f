"""Run one epoch of a fast engine: the frame every fast engine shares.

A fast engine (ePIE, rPIE, PINE, mPIE, minibatch PIE, LSQML, RAAR) writes two methods,
``setup`` (what its sweeps need beyond the frame's, once per ``prepare``) and ``sweep`` (one
pass over this rank's patterns, returning the data-error numerator); the frame owns the rest
of an epoch, in this order::

    sweep              the engine's update rule over every position (its backend)
    rank average       O, P <- mean over ranks (data-parallel runs; ptyframe-mpi)
    corrections        the experiment's nuisances the run refines (positions, scan
                       transform, probe variation, flux): each ``Correction.end_epoch``
    probe centring     probe and object rolled by whole pixels so the probe's intensity
                       centroid sits at the window centre (``ptyframe.physics.ambiguities``);
                       the engine hears ``on_roll(sy, sx)`` to roll its own buffers. Not in
                       the near field: there the probe fills the field (a hologram's
                       illumination has no centre to keep)
    error              sum over ranks of the numerators / sum of the measured amplitudes
    prior step         PINE's O <- (1 - rho) O + rho D(O) (Yamada et al. 2024, eq. 20)

The frame reaches the patterns only through the run's pattern data (``Measurements`` or a
pattern source, ``ptyframe.data.feed``): the visiting order of an epoch is the data's
``order(seed, epoch)`` (one block in memory: a permutation of every pattern; streamed: the
blocks in scan order, each shuffled), and the sweeps read the amplitudes through
``ptyframe.data.feed`` (sequential) or ``batch`` inside the block in use (minibatch).
Because the order depends on the block size, the frame records it in its ``state_dict``
and refuses a resume with another one.

The propagator and the slices of a visit come from the run's physics (``self.physics``, the
forward model an engine taking ``physics`` is built with): ``ptyframe.engines.visit`` builds
them once per ``prepare`` (far field by default; near field with a buffer zone; multislice)
and refuses what the engine does not declare; a run other than the far field through one
slice takes the torch sweep of ``ptyframe.engines.visit_sweeps``, except the near field
through one slice and several slices in an engine whose numba path runs them
(``numba_near_field``, ``numba_multislice``: the PIE family,
``ptyframe.engines.nearfield_sweep`` and ``ptyframe.engines.multislice_sweep``).

The corrections (``ptyframe.engines.corrections``) are built from the engine's config
(``engine.refine.positions``, ``engine.probe_variation.modes``, ``engine.flux.refine``) in
``prepare``; the sweeps call them through ``self.hooks`` (a ``SweepHooks``); after their
``end_epoch`` the frame moves the scan's windows to the refined positions
(``self.scan.move``), writes them into ``state.positions_px`` and the corrections' results
into ``state.extras`` (both land in ``recon.h5``). Where the numba sweep has no kernel for a
correction (probe variation, flux) ``backend=auto`` runs the torch sweep (logged, and
``engine_backend`` in ``recon.h5`` says so).

The frame also resolves the backend once per ``prepare`` (``ptyframe.engines.backend``),
keeps the scan's windows (``ptyframe.engines.scan``), checks that the patterns fit the
probe and the windows the object, and runs the sweep on one torch thread where the engine
declares that it runs fastest so (``Capabilities.single_thread``) while a denoiser keeps
every thread.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ptyframe.engines.backend import Backend, resolve
from ptyframe.engines.base import Engine, EpochReport
from ptyframe.engines.corrections.base import CorrectionContext
from ptyframe.engines.corrections.hooks import SweepHooks, build_corrections, check_capabilities
from ptyframe.engines.scan import ScanWindows
from ptyframe.engines.visit import VisitModel, far_field_visits, frame_visit, is_plain
from ptyframe.errors import ConfigError
from ptyframe.physics.ambiguities import center_probe

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ptyframe.data.dataset import PtychoDataset
    from ptyframe.data.feed import PatternData
    from ptyframe.distributed.base import Distribution
    from ptyframe.engines.config import PieFamilyConfig
    from ptyframe.engines.corrections.base import Correction
    from ptyframe.registry import BuildContext
    from ptyframe.state import ReconstructionState

log = logging.getLogger(__name__)


class FastEngine(Engine):
    """The epoch frame (module docstring); subclasses write ``setup`` and ``sweep``."""

    config: PieFamilyConfig
    #: The run's forward model (``physics=...``; None: far field), read for the propagator,
    #: the slices and the buffer zone of a visit (``ptyframe.engines.visit``).
    physics: Any = None

    def __init__(self, context: BuildContext | None = None) -> None:
        super().__init__(context)
        #: The resolved backend of the sweeps (set by ``prepare``).
        self.backend: Backend = Backend()
        #: The nuisances this run refines, in the order their ``end_epoch`` runs.
        self.corrections: list[Correction] = []
        #: The sweeps' calls into the corrections (None: no correction this run).
        self.hooks: SweepHooks | None = None
        #: What the corrections read of the frame (``corrections.base.FrameView``).
        self.view: CorrectionContext | None = None
        self.amp_total: float = 0.0
        #: The exit-wave model and propagator of a visit (set by ``prepare``).
        self.visit: VisitModel = far_field_visits((1, 1))

    # ------------------------------------------------------------------ contract
    def numba_covers(self) -> bool:
        """Return whether this engine's numba path covers the prepared run (default: yes)."""
        return True

    #: Whether the numba path transforms with FFTW plans (the sequential sweeps do).
    fftw_sweep: bool = False
    #: Whether the numba path also runs the near field through one slice (the PIE family:
    #: ``ptyframe.engines.nearfield_sweep``); else only the plain far field.
    numba_near_field: bool = False
    #: Whether the numba path also runs several slices, through the far or the near field
    #: (the PIE family: ``ptyframe.engines.multislice_sweep``).
    numba_multislice: bool = False

    def setup(self) -> None:
        """Precompute what this engine's sweeps need (after the frame's ``prepare``)."""

    @abstractmethod
    def sweep(self, epoch: int, update_probe: bool) -> float:
        """Update object and probe from every pattern of this rank once; return the sum of
        the amplitude errors ``sum_valid | |F psi| - a |`` over the patterns."""

    def on_roll(self, sy: int, sx: int) -> None:
        """Roll the engine's own object- and probe-shaped buffers by ``(sy, sx)``.

        Called after the frame centred the probe (object and probe rolled together).
        """

    # ------------------------------------------------------------------ prepare
    def init_state(self, state: ReconstructionState, dataset: PtychoDataset) -> ReconstructionState:
        """Return the state the physics needs (slices, the buffered probe); far field: as is."""
        if is_plain(self.physics):
            return state
        shaped: ReconstructionState = self.physics.init_state(state, dataset)
        return shaped

    def prepare(
        self,
        measurements: PatternData,
        state: ReconstructionState,
        distribution: Distribution | None = None,
        seed: int = 0,
    ) -> None:
        """Attach data and state, check they fit, resolve the backend, then ``setup``."""
        super().prepare(measurements, state, distribution, seed)
        name = self.name
        if state.object.shape[0] != 1 and not self.capabilities.slices:
            raise ConfigError(
                f"{name} reconstructs a single-slice object; the state has "
                f"{state.object.shape[0]} slices (use engine=autodiff for multislice)"
            )
        cfg = self.config
        self.visit = frame_visit(
            name,
            self.capabilities,
            str(cfg.backend),
            self.physics,
            measurements.geometry,
            measurements.window,
            state.window,
            int(state.object.shape[0]),
            state.probe.dtype,
            state.object.device,
            self.numba_near_field,
            self.numba_multislice,
        )
        for key in ("object", "probe"):  # the kernels take numpy views of the memory
            t = getattr(state, key)
            if not t.is_contiguous():
                setattr(state, key, t.contiguous())
        positions = state.positions_px[torch.as_tensor(measurements.indices)]
        height, width = state.object.shape[-2:]
        b = self.visit.buffer_px  # windows on the object padded by the buffer (visit.py)
        self.scan = ScanWindows(
            positions, state.window, (int(height) + 2 * b, int(width) + 2 * b), state.object.device
        )
        (self.amp_total,) = self.distribution.sum_scalars(measurements.amplitude_sum())
        if self.amp_total <= 0:
            raise ConfigError("the measured patterns are all zero; nothing to reconstruct")
        self._prepare_corrections(state)
        hooks_ok = self.hooks is None or self.hooks.numba_covers
        numba_ok = "numba" in self.capabilities.backends and self.numba_covers()
        if numba_ok and not hooks_ok and str(cfg.backend) == "auto":
            log.info("%s: probe variation and flux run in the torch sweep (backend=torch)", name)
        self.backend = resolve(
            name,
            str(cfg.backend),
            str(cfg.fft),
            state.object.device,
            numba_ok=numba_ok and hooks_ok and self.numba_visit,
            fftw_ok=self.fftw_sweep,
            deterministic=self.deterministic,
            auto_fftw=not self.visit.near_field,  # the far field's frames, one slice or more
        )
        self.setup()
        self.view = view = CorrectionContext(
            self.scan.positions_px.clone(),
            state.window,
            state.probe.dtype,
            state.probe.device,
            state.probe,
            (int(height), int(width)),
            state.object,
            measurements,
        )
        for correction in self.corrections:
            correction.prepare(view)

    @property
    def numba_visit(self) -> bool:
        """Whether the numba path covers the run's visit model (plain far field; with
        ``numba_near_field`` also the near field through one slice, with
        ``numba_multislice`` several slices)."""
        return self.visit.numba_covers(self.numba_near_field, self.numba_multislice)

    def _prepare_corrections(self, state: ReconstructionState) -> None:
        """Build the corrections the config asks for; refuse what this run cannot refine."""
        name, cfg = self.name, self.config
        check_capabilities(name, self.capabilities, cfg)
        self.corrections = build_corrections(cfg)
        listed = ", ".join(c.name for c in self.corrections)
        if self.corrections and not self.visit.plain:  # the general visit calls no hooks
            raise ConfigError(
                f"{name}: the corrections ({listed}) run in the far field through one slice "
                "only; switch them off for near field or multislice"
            )
        if self.corrections and self.distribution.size > 1:
            raise ConfigError(
                f"{name}: the corrections ({listed}) run in one process only; run without "
                "mpiexec or switch them off"
            )
        self.hooks = SweepHooks(self.corrections) if self.corrections else None
        if self.hooks is not None and self.hooks.positions is not None:
            state.positions_px = state.positions_px.clone()  # not the dataset's memory

    def describe(self) -> dict[str, str]:
        """Return the resolved backend (and the corrections run) for ``recon.h5``."""
        out = dict(self.backend.describe())
        out.update(self.visit.describe())
        if self.corrections:
            out["corrections"] = ",".join(c.name for c in self.corrections)
        return out

    # ------------------------------------------------------------------ the epoch
    def visiting_order(self, epoch: int) -> np.ndarray:
        """Return the order in which epoch ``epoch`` visits this rank's patterns (the
        data's ``order``: blocks in scan order, shuffled inside each)."""
        assert self.measurements is not None
        return self.measurements.order(self.seed, epoch)

    @property
    def block_patterns(self) -> int:
        """Patterns per block of the data's visiting order (all of them: one block)."""
        assert self.measurements is not None
        return int(self.measurements.block_patterns)

    def update_probe(self, epoch: int) -> bool:
        """Return whether epoch ``epoch`` updates the probe (``fix_probe``, the start)."""
        cfg = self.config
        return (not cfg.fix_probe) and epoch >= int(cfg.probe_update_start)

    def step(self, epoch: int) -> EpochReport:
        """Run epoch ``epoch``: sweep, average, correct, centre, report, denoise."""
        assert self.measurements is not None and self.state is not None, "call prepare() first"
        t0 = time.perf_counter()
        view = self.view
        for correction in self.corrections:
            assert view is not None  # set by prepare with the corrections
            correction.begin_epoch(epoch, view)
        with self._sweep_threads(), torch.no_grad():
            err = self.sweep(epoch, self.update_probe(epoch))
        if self.distribution.size > 1:
            self.distribution.allreduce_mean_(self.state.object)
            self.distribution.allreduce_mean_(self.state.probe)
        scalars: dict[str, float] = {}
        if view is not None:
            view.object = self.state.object  # the state's tensor (a resume may replace it)
        for correction in self.corrections:
            assert view is not None
            scalars.update(correction.end_epoch(epoch, view))
        self.corrections_moved()
        if self.config.center_probe and not self.visit.near_field:
            sy, sx = center_probe(self.state)
            if sy or sx:
                self.on_roll(sy, sx)
                for correction in self.corrections:
                    correction.on_roll(sy, sx)
        (err_sum,) = self.distribution.sum_scalars(err)
        report = EpochReport(epoch, err_sum / self.amp_total, time.perf_counter() - t0, scalars)
        if self.capabilities.prior == "after_epoch":
            report = self.apply_prior(report)
        return report

    def corrections_moved(self) -> None:
        """Take the corrections' results: the scan's windows move to the refined positions
        (also written into ``state.positions_px``), the rest goes to ``state.extras``
        (``recon.h5``'s ``/extras``)."""
        hooks, state, meas = self.hooks, self.state, self.measurements
        if hooks is None or state is None or meas is None:
            return
        if hooks.positions is not None:
            pos = hooks.positions.positions_px
            self.scan.move(pos)
            idx = torch.as_tensor(meas.indices)
            state.positions_px[idx] = pos.to(state.positions_px)
        for correction in self.corrections:
            for key, value in correction.results().items():
                if key != "positions_px":
                    state.extras[key] = torch.as_tensor(np.ascontiguousarray(value))

    @contextmanager
    def _sweep_threads(self) -> Iterator[None]:
        """Run the sweep on one torch thread where the engine asks for it and a denoiser
        keeps the others (without a denoiser the runner set one thread for the run)."""
        if not (self.capabilities.single_thread and self.prior is not None):
            yield
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Return the prior's state, each correction's (by name) and the block size."""
        out = super().state_dict()
        for correction in self.corrections:
            out[f"correction/{correction.name}"] = correction.state_dict()
        if self.measurements is not None:
            out["block_patterns"] = self.block_patterns
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (after ``prepare``).

        A state saved with another block size would continue in another visiting order:
        refused with the setting that resumes it.
        """
        saved = state.get("block_patterns")
        if saved is not None and self.measurements is not None:
            saved = int(saved)
            if saved != self.block_patterns:
                raise ConfigError(
                    f"the checkpoint was made visiting the patterns in blocks of {saved}, this "
                    f"run uses blocks of {self.block_patterns}: resume with "
                    f"data.block_patterns={saved}"
                )
        super().load_state_dict(state)
        for correction in self.corrections:
            correction.load_state_dict(state.get(f"correction/{correction.name}", {}))
        if self.corrections:
            self.corrections_moved()
