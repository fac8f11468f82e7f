"""Apply a denoising prior to the object between sweeps (PINE's second HSD line).

PINE (Yamada et al., J. Appl. Cryst. 57 (2024), eq. 20), after each sweep::

    O <- (1 - rho) O + rho D(O),        rho in (0, 1/2)

with ``D`` a nonexpansive denoiser applied to complex objects as
``D(O) = D(Re O) + i D(Im O)`` (eq. 22). For a nonexpansive ``D`` and ``rho < 1/2`` this is
the hybrid steepest-descent step of Cohen et al. (2021) that the paper's convergence argument
rests on. A registered component (kind ``prior_step``, built as ``DenoiseStep(config,
denoiser)``): any engine whose constructor takes a ``prior`` is given it by
``ptyframe.compose.build_engine`` (with the run's ``denoiser``) when its ``rho > 0``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from ptyframe.engines.checks import check_range
from ptyframe.errors import ConfigError
from ptyframe.state import ReconstructionState


@dataclass
class DenoiseStepConfig:
    """``O <- (1 - rho) O + rho D(O)`` every ``every`` epochs from ``start`` (PINE eq. 20)."""

    name: str = "denoise"
    rho: float = 0.49
    every: int = 1
    start: int = 0

    def __post_init__(self) -> None:
        check_range("prior", "rho", self.rho, 0.0, 0.5, lo_open=False, hi_open=True)
        if int(self.every) < 1 or int(self.start) < 0:
            raise ConfigError(f"prior.every = {self.every} must be >= 1 and start >= 0")


class DenoiseStep:
    """Mix the object with its denoised self; ``denoiser`` maps complex ``[..., H, W]``."""

    def __init__(self, config: DenoiseStepConfig, denoiser: Any | None = None) -> None:
        self.config = config
        self.denoiser = denoiser
        self.seconds = 0.0

    def active(self, epoch: int) -> bool:
        cfg = self.config
        return cfg.rho > 0 and epoch >= cfg.start and (epoch - cfg.start) % cfg.every == 0

    def mix(self, obj: torch.Tensor) -> None:
        """Set ``obj <- (1 - rho) obj + rho D(obj)`` in place (any object tensor)."""
        assert self.denoiser is not None, "rho > 0 needs a denoiser"
        rho = float(self.config.rho)
        with torch.no_grad():
            den = self.denoiser(obj)
            obj.mul_(1.0 - rho).add_(den.to(obj.dtype), alpha=rho)

    def state_dict(self) -> dict[str, Any]:
        """Return the denoiser's run state (the frozen normalisation range), for resume.

        A resumed run must apply the same map as the uninterrupted one: a denoiser that froze
        its normalisation on the run's first object would otherwise freeze it again on the
        resumed object, and the result would differ from the uninterrupted run.
        """
        den = self.denoiser
        if den is not None and hasattr(den, "state_dict"):
            return dict(den.state_dict())
        frozen = getattr(den, "frozen", None)
        return {} if frozen is None else {"frozen": [t.detach().cpu() for t in frozen]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        den = self.denoiser
        if den is None or not state:
            return
        if hasattr(den, "load_state_dict"):
            den.load_state_dict(state)
        elif state.get("frozen") is not None and hasattr(den, "frozen"):
            device = getattr(den, "device", "cpu")
            den.frozen = tuple(t.to(device) for t in state["frozen"])

    def observe(self, measurements: Any, distribution: Any | None = None) -> None:
        """Give a denoiser that takes it (``observe``) the scan's dose per object pixel.

        Called by ``Engine.prepare``; a denoiser without ``observe`` is left alone.
        """
        take = getattr(self.denoiser, "observe", None)
        if callable(take):
            from ptyframe.denoise.dose import photons_per_object_pixel

            take(photons_per_object_pixel(measurements, distribution))

    def scalars(self) -> dict[str, float]:
        """Return the denoiser's per-run numbers for the history (e.g. its frozen mix weight)."""
        get = getattr(self.denoiser, "scalars", None)
        return dict(get()) if callable(get) else {}

    def apply(self, state: ReconstructionState, epoch: int) -> float:
        """Update ``state.object`` in place if this epoch denoises; return the seconds spent."""
        if not self.active(epoch):
            return 0.0
        t0 = time.perf_counter()
        self.mix(state.object)
        self.seconds = time.perf_counter() - t0
        return self.seconds
