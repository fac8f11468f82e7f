"""A noise-aware certified denoiser: a convex mix of two nonexpansive nets, frozen per run.

``D_t(x) = (1 - t) D_low(x) + t D_high(x)`` with ``D_low`` the single-sigma net
(``cpl_sigma15``, trained at sigma = 15/255) and ``D_high`` the blind one (``cpl_blind``,
sigma in [0, 50]/255), both certified ``Lip <= 1`` (``cpl.py``). The weight ``t`` in [0, 1]
is chosen once, at the denoiser's *first* call of a run, and then kept for the rest of the
run (and saved with the run state, so a resumed run applies the same map).

Noise level, two estimates:

* the scan's **dose** (photons per object pixel, ``dose.py``), which sets the Poisson noise of
  the object; the engine hands the measurements to the prior step at ``prepare``
  (``DenoiseStep.observe``). ``t = 1`` at or below ``dose_low``, 0 at or above ``dose_high``,
  log-linear between (``dose_weight``; a step when equal). Used when it was observed.
* otherwise the **MAD level** of the first object as the nets see it (after the frozen
  min-max normalisation of ``apply.py``; Donoho & Johnstone, Biometrika 81 (1994), sec. 4.2):
  the finest-scale diagonal Haar coefficients
  ``d = (x[2i, 2j] - x[2i, 2j+1] - x[2i+1, 2j] + x[2i+1, 2j+1]) / 2`` of an image ``x`` are an
  orthonormal transform, so white noise of standard deviation ``sigma`` gives ``d`` of standard
  deviation ``sigma`` while a smooth image contributes little; ``sigma_hat = median(|d|) /
  0.6745`` (the median of ``|N(0, 1)|``). The object's level is the smallest ``sigma_hat``
  over its non-constant parts (``noise_level``) and
  ``t = clip((sigma_hat - sigma_low) / (sigma_high - sigma_low), 0, 1)``. On the first object
  of a PINE run (after one sweep) this level is dominated by reconstruction artefacts more
  than by the dose (``benchmarks/pine_denoiser_select.py`` measures both), hence the dose first.

The thresholds were chosen on simulated cases that are not the benchmark's study cases
(``benchmarks/pine_denoiser_select.py``). ``t`` may also be set by hand (``denoiser.t``).

Theorem (``Lip(D_t) <= max(Lip D_low, Lip D_high) <= 1`` for every fixed ``t`` in [0, 1]).
Proof: for images ``x, y``,
``||D_t(x) - D_t(y)|| <= (1 - t) ||D_low(x) - D_low(y)|| + t ||D_high(x) - D_high(y)||
<= ((1 - t) L_low + t L_high) ||x - y|| <= max(L_low, L_high) ||x - y||`` (triangle
inequality; ``1 - t, t >= 0`` sum to 1). ``ConvexMix`` takes one ``t_p`` per part ``p`` (the
run sets the same ``t`` for all); with a different frozen ``t_p`` per part, the
applied map is block-diagonal over the parts (each part goes through its own fixed
``A_p^{-1} D_{t_p} A_p``, ``apply.py``), so ``||D(O) - D(O')||^2 = sum_p ||D_p(p) - D_p(p')||^2
<= L^2 sum_p ||p - p'||^2 = L^2 ||O - O'||^2``: the applied map is nonexpansive, and so is
PINE's ``O -> (1 - rho) O + rho D(O)``. This needs ``t`` fixed: a ``t`` recomputed from the
input on every call would make ``t`` a function of ``x`` and the argument above fails (the
map is then not even known to be Lipschitz), which is why it is frozen at the first call.
The statement is about exact arithmetic; the nets run in float32.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import Tensor, nn

from ptyframe.denoise.apply import ComplexDenoiser, object_parts
from ptyframe.errors import ConfigError

log = logging.getLogger(__name__)

MAD_TO_SIGMA = 0.6745


def haar_diagonal(images: Tensor) -> Tensor:
    """Return the finest-scale diagonal Haar coefficients ``[B, H//2, W//2]`` of ``[B, H, W]``."""
    h, w = images.shape[-2] // 2 * 2, images.shape[-1] // 2 * 2
    x = images[..., :h, :w]
    return (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2


def estimate_sigma(images: Tensor) -> Tensor:
    """Return Donoho's MAD noise estimate ``median(|d|) / 0.6745`` per image, ``[B]``.

    ``images`` is real ``[B, H, W]`` with ``H, W >= 2``; ``d`` the diagonal Haar coefficients.
    """
    if images.dim() != 3 or images.shape[-2] < 2 or images.shape[-1] < 2:
        raise ConfigError(f"estimate_sigma needs real [B, H>=2, W>=2], got {tuple(images.shape)}")
    d = haar_diagonal(images.double()).flatten(1).abs()
    return d.median(dim=1).values / MAD_TO_SIGMA


def noise_level(sigma: Tensor, constant: Tensor) -> Tensor:
    """Return the object's noise level: the smallest ``sigma_hat`` of its non-constant parts.

    A part's MAD estimate is raised by image structure that reaches the finest scale (edges,
    reconstruction artefacts), never lowered by it on average, so the smallest estimate over
    the parts is the least contaminated one (0 if every part is constant).
    """
    live = sigma[~constant]
    return live.min() if live.numel() else sigma.new_zeros(())


def mix_weight(sigma: Tensor, sigma_low: float, sigma_high: float) -> Tensor:
    """Return ``t = clip((sigma - sigma_low) / (sigma_high - sigma_low), 0, 1)``.

    Equal thresholds give the step ``t = [sigma > sigma_low]``.
    """
    if sigma_high < sigma_low:
        raise ConfigError(
            f"denoiser sigma_high = {sigma_high} < sigma_low = {sigma_low}; use sigma_high >= "
            "sigma_low"
        )
    if sigma_high == sigma_low:
        return (sigma > sigma_low).to(sigma.dtype)
    return ((sigma - sigma_low) / (sigma_high - sigma_low)).clamp(0.0, 1.0)


def dose_weight(dose: float, dose_low: float, dose_high: float) -> float:
    """Return ``t`` for a dose: 1 at or below ``dose_low``, 0 at or above ``dose_high``.

    Log-linear in between, ``t = log(dose_high / dose) / log(dose_high / dose_low)``; equal
    thresholds give the step ``t = [dose < dose_low]``. ``dose_high = 0`` means unset.
    """
    if dose_low < 0 or dose_high < dose_low:
        raise ConfigError(
            f"denoiser dose_low = {dose_low}, dose_high = {dose_high}: need 0 <= dose_low <= "
            "dose_high (photons per object pixel; equal: a step)"
        )
    if dose_low == dose_high:
        return float(dose < dose_low)
    if dose <= dose_low:
        return 1.0
    if dose >= dose_high:
        return 0.0
    return math.log(dose_high / dose) / math.log(dose_high / dose_low)


class ConvexMix(nn.Module):
    """``[B, 1, H, W] -> (1 - t_b) low(x_b) + t_b high(x_b)`` with ``t`` ``[B]`` set beforehand."""

    #: the mix weight of each image ``[B]`` (a buffer, set before the call)
    t: Tensor

    def __init__(self, low: nn.Module, high: nn.Module) -> None:
        super().__init__()
        self.low = low
        self.high = high
        self.register_buffer("t", torch.zeros(0))

    @property
    def receptive_radius(self) -> int:
        """Return the larger receptive radius of the two nets (for exact tiling)."""
        return max(int(getattr(m, "receptive_radius", 0)) for m in (self.low, self.high))

    def forward(self, x: Tensor) -> Tensor:
        if self.t.numel() != x.shape[0]:
            raise ConfigError(
                f"the mix weight t has {self.t.numel()} entries for {x.shape[0]} images; the "
                "noise-aware denoiser sets t at its first call (ComplexDenoiser.freeze)"
            )
        t = self.t.to(x.dtype).view(-1, 1, 1, 1)
        if bool((t == 1).all()):
            return self.high(x)  # the same map, one net evaluated
        out = self.low(x)
        if bool((t > 0).any()):
            out = out + t * (self.high(x) - out)
        return out


class AutoMixDenoiser(ComplexDenoiser):
    """``ComplexDenoiser`` over ``ConvexMix``: freezes the range *and* ``t`` at the first call.

    ``t_fixed`` (a float) skips the estimate and uses that ``t`` for every part.
    """

    def __init__(
        self,
        mix: ConvexMix,
        sigma_low: float,
        sigma_high: float,
        dose_low: float = 0.0,
        dose_high: float = 0.0,
        t_fixed: float | None = None,
        **kw: Any,
    ) -> None:
        if kw.get("normalisation", "frozen") != "frozen":
            raise ConfigError(
                "the noise-aware denoiser needs normalisation 'frozen' (t is frozen with the "
                "range at the first call); use denoiser=dncnn for 'minmax' or 'none'"
            )
        mix_weight(torch.zeros(1), sigma_low, sigma_high)  # validates the thresholds
        dose_weight(1.0, dose_low, dose_high)
        if t_fixed is not None and not 0.0 <= float(t_fixed) <= 1.0:
            raise ConfigError(f"denoiser.t = {t_fixed} must lie in [0, 1] (or be null: auto)")
        super().__init__(mix, **kw)
        self.mix: ConvexMix = mix  # ``self.model``, typed
        self.sigma_low, self.sigma_high = float(sigma_low), float(sigma_high)
        self.dose_low, self.dose_high = float(dose_low), float(dose_high)
        self.t_fixed = None if t_fixed is None else float(t_fixed)
        self.sigma: Tensor | None = None
        self.dose: float | None = None

    def observe(self, dose: float) -> None:
        """Take the scan's photons per object pixel (before the first call; see ``dose.py``)."""
        self.dose = float(dose)

    def freeze(self, obj: Tensor) -> bool:
        """Freeze the range as ``ComplexDenoiser.freeze``, then ``t`` (dose, else MAD level)."""
        if not super().freeze(obj):
            return False
        assert self.frozen is not None
        lo, scale, constant = self.frozen
        work = object_parts(obj).to(self.device).detach()
        sigma = estimate_sigma((work - lo) / scale).float()
        level = noise_level(sigma, constant.flatten())
        if self.t_fixed is not None:
            t, how = self.t_fixed, "set by hand"
        elif self.dose is not None and self.dose_high > 0:
            t = dose_weight(self.dose, self.dose_low, self.dose_high)
            how = f"dose {self.dose:.4g} photons/px (dose_low {self.dose_low:g}, high "
            how += f"{self.dose_high:g})"
        else:
            t = float(mix_weight(level.view(1), self.sigma_low, self.sigma_high)[0])
            how = f"MAD level {float(level):.5f} (sigma_low {self.sigma_low:g}, high "
            how += f"{self.sigma_high:g})"
        self.set_t(torch.full_like(sigma, float(t)), sigma)
        log.info("noise-aware denoiser: frozen t = %.3f from %s", float(t), how)
        return True

    def set_t(self, t: Tensor, sigma: Tensor | None = None) -> None:
        """Set the frozen mix weights ``t`` ``[parts]`` (and the estimates they came from)."""
        self.mix.t = t.detach().float().to(self.device)
        self.sigma = None if sigma is None else sigma.detach().float().cpu()

    @property
    def t(self) -> Tensor | None:
        """Return the frozen ``t`` per part, or None before the first call."""
        return None if self.mix.t.numel() == 0 else self.mix.t.detach().cpu()

    def state_dict(self) -> dict[str, Any]:
        """Return the frozen range, ``t`` and the noise estimates (for checkpoint/resume)."""
        out = super().state_dict()
        if self.t is not None:
            out["t"] = self.t
            if self.sigma is not None:
                out["sigma"] = self.sigma
        if self.dose is not None:
            out["dose"] = torch.tensor(self.dose, dtype=torch.float64)
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        super().load_state_dict(state)
        if state.get("t") is not None:
            self.set_t(torch.as_tensor(state["t"]), state.get("sigma"))
        if state.get("dose") is not None:
            self.dose = float(state["dose"])

    def scalars(self) -> dict[str, float]:
        """Return the frozen ``t`` and the noise level it came from, for the run history."""
        t = self.t
        if t is None:
            return {}
        out = {"denoise_t": float(t.max())}
        if self.sigma is not None:
            out["denoise_sigma"] = float(noise_level(self.sigma, self.sigma <= 0))
        if self.dose is not None:
            out["denoise_dose"] = self.dose
        return out
