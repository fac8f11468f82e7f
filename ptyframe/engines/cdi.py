"""Reconstruct full-field CDI data by support projections: HIO and ER with shrink-wrap.

For one far-field pattern ``A = sqrt(I)`` of an isolated object (the data of
``physics=fullfield_cdi``: one tile, detector size = object size, plane-wave illumination
``p``) iterate on the exit wave ``psi = p O`` (Fienup, Appl. Opt. 21, 2758 (1982)):

    Psi   = F[psi];   psi' = F^-1[ A Psi / |Psi| ]                 (modulus projection)
    ER    psi <- psi'            in S,   0                  outside S
    HIO   psi <- psi'            in S,   psi - beta psi'    outside S

``F`` is the unitary FFT of ``ptyframe.physics.fft``. An epoch is ``iterations`` iterations:
HIO, except every ``er_every``-th epoch and the last ``final_er_epochs`` epochs, which use ER.
The support ``S`` starts as the thresholded autocorrelation ``|F^-1 I| > support_threshold max``
(twice the object's extent) and is shrink-wrapped every ``shrinkwrap_every`` epochs:
``S = blur_sigma(|psi|) > shrinkwrap_threshold max``, sigma falling from
``shrinkwrap_sigma_px`` to ``shrinkwrap_sigma_min_px`` (Marchesini et al., PRB 68, 140101
(2003)). Start: the measured modulus with random phases (seeded), restricted to ``S``.

Why this and not gradient descent: the AD model ``physics=fullfield_cdi`` fits the data
inside the loose autocorrelation support and stalls there (``tests/test_cold_start.py``
holds both); HIO's feedback outside the support escapes those stagnation points. Scoring must
allow for a shift, the twin image ``conj(O(-r))`` and a global phase (``tests/test_cold_start.py``).
``data_error`` and the stored object: the estimate restricted to the support at the end of the
epoch, ``P_S psi``, and ``sum | |F P_S psi| - A | / sum A`` (HIO's iterate itself carries the
feedback outside the support, and its error jumps between HIO and ER epochs).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ptyframe.data.feed import PatternData
from ptyframe.data.measurements import Measurements
from ptyframe.distributed.base import Distribution
from ptyframe.engines.base import Capabilities, Engine, EpochReport, check_range
from ptyframe.engines.config import EngineConfig
from ptyframe.errors import ConfigError
from ptyframe.physics import fft
from ptyframe.physics.objects import shrink_wrap
from ptyframe.state import ReconstructionState


@dataclass
class HioConfig(EngineConfig):
    """HIO/ER support projections with shrink-wrap for full-field CDI (module docstring)."""

    name: str = "hio"
    iterations: int = 10
    beta: float = 0.9
    er_every: int = 10
    final_er_epochs: int = 5
    support_threshold: float = 0.04
    shrinkwrap_every: int = 2
    shrinkwrap_threshold: float = 0.2
    shrinkwrap_sigma_px: float = 3.0
    shrinkwrap_sigma_min_px: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self.name, "beta", self.beta, 0.0, 1.0, lo_open=False)
        check_range(self.name, "support_threshold", self.support_threshold, 0.0, 1.0)
        check_range(self.name, "shrinkwrap_threshold", self.shrinkwrap_threshold, 0.0, 1.0)
        if int(self.epochs) < 0 or int(self.iterations) < 1:
            raise ConfigError(f"{self.name}: epochs must be >= 0 and iterations >= 1")
        if int(self.er_every) < 0 or int(self.shrinkwrap_every) < 0:
            raise ConfigError(f"{self.name}: er_every and shrinkwrap_every must be >= 0")


class HioEngine(Engine):
    """HIO/ER for one far-field pattern; see the module docstring."""

    config: HioConfig
    capabilities: ClassVar[Capabilities] = Capabilities(data="fullfield")

    def __init__(self, config: HioConfig | None = None) -> None:
        super().__init__()
        self.config = config or HioConfig()

    def prepare(
        self,
        measurements: PatternData,
        state: ReconstructionState,
        distribution: Distribution | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(measurements, Measurements):  # hio does not declare streams
            raise ConfigError("engine=hio reads its pattern in memory: set data.stream=false")
        super().prepare(measurements, state, distribution, seed)
        if self.distribution.size > 1:
            raise ConfigError("engine=hio runs in one process: use distribution=single")
        amps = measurements.amplitudes
        if amps.shape[0] != 1 or tuple(amps.shape[-2:]) != tuple(state.object.shape[-2:]):
            raise ConfigError(
                f"engine=hio needs one pattern the size of the object (full-field CDI), got "
                f"{tuple(amps.shape)} patterns for a {tuple(state.object.shape[-2:])} object"
            )
        dev = state.object.device  # the pattern may be kept on the host
        self.amp = amps[0].to(dev, torch.float64)
        self.valid = None if measurements.valid is None else measurements.valid[0].to(dev)
        m, n = self.amp.shape
        self.p = math.sqrt(float(self.amp.square().sum()) / (m * n))  # plane wave, Parseval
        support = state.extras.get("support")
        if support is None or bool(support.all()):
            auto = torch.fft.ifft2(self.amp.square()).abs()
            auto = torch.fft.fftshift(auto)
            support = auto > float(self.config.support_threshold) * float(auto.max())
            state.extras["support"] = support
        self.support = support.to(torch.bool)
        g = np.random.default_rng(self.seed)
        phase = torch.from_numpy(g.uniform(0, 2 * np.pi, (m, n))).to(self.amp.device)
        psi = fft.far_field_adjoint(torch.polar(self.amp, phase))
        self.psi = torch.where(self.support, psi, torch.zeros_like(psi))
        self._store()

    def _project(self, psi: torch.Tensor) -> tuple[torch.Tensor, float]:
        wave = fft.far_field(psi)
        mod = wave.abs()
        d = (mod - self.amp).abs()
        if self.valid is not None:
            d = d * self.valid
        err = float(d.sum()) / max(float(self.amp.sum()), 1e-30)
        new = torch.where(mod > 0, wave * (self.amp / mod.clamp(min=1e-30)), self.amp + 0j)
        if self.valid is not None:
            new = torch.where(self.valid, new, wave)
        return fft.far_field_adjoint(new), err

    def step(self, epoch: int) -> EpochReport:
        """Run ``iterations`` HIO (or ER) iterations, then shrink-wrap when due."""
        t0 = time.perf_counter()
        c = self.config
        er = (epoch >= int(c.epochs) - int(c.final_er_epochs)) or (
            int(c.er_every) > 0 and (epoch + 1) % int(c.er_every) == 0
        )
        err = math.nan
        beta = float(c.beta)
        for _ in range(int(c.iterations)):
            proj, err = self._project(self.psi)
            outside = torch.zeros_like(proj) if er else self.psi - beta * proj
            self.psi = torch.where(self.support, proj, outside)
        if int(c.shrinkwrap_every) and (epoch + 1) % int(c.shrinkwrap_every) == 0:
            frac = min(1.0, epoch / max(1, int(c.epochs) - 1))
            sigma = c.shrinkwrap_sigma_px + frac * (
                c.shrinkwrap_sigma_min_px - c.shrinkwrap_sigma_px
            )
            self.support = shrink_wrap(self.psi.abs()[None], sigma, float(c.shrinkwrap_threshold))
        estimate = torch.where(self.support, self.psi, torch.zeros_like(self.psi))
        _, err = self._project(estimate)  # the error of what is stored, not of HIO's iterate
        self._store()
        return EpochReport(
            epoch, err, time.perf_counter() - t0, {"support_px": float(self.support.sum())}
        )

    def _store(self) -> None:
        assert self.state is not None
        st = self.state
        estimate = torch.where(self.support, self.psi, torch.zeros_like(self.psi))
        st.object[0].copy_((estimate / self.p).to(st.object.dtype))
        st.probe.fill_(self.p)
        st.extras["support"] = self.support.clone()

    def state_dict(self) -> dict[str, Any]:
        """Return the exit wave and the support."""
        return {"psi": self.psi.clone(), "support": self.support.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (after ``prepare``)."""
        self.psi = state["psi"].clone()
        self.support = state["support"].clone()
