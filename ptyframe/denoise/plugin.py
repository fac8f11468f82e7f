"""Register the denoisers: ``dncnn`` (one nonexpansive-layer net, PINE eq. 22) and ``cpl_auto``
(the default: the noise-aware convex mix of two certified nets, ``ptyframe.denoise.auto``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ptyframe.errors import ConfigError
from ptyframe.hookspecs import hookimpl

if TYPE_CHECKING:
    from pathlib import Path

    from ptyframe.denoise.apply import ComplexDenoiser
    from ptyframe.registry import BuildContext, ScopedRegistry

# thresholds of the noise-aware mix, chosen by benchmarks/pine_denoiser_select.py on cases
# that are not the study cases: the dose (photons per object pixel, used when the engine
# reports the measurements) and the MAD noise level of the first object (normalised units)
AUTO_DOSE_LOW = 714.0
AUTO_DOSE_HIGH = 714.0
AUTO_SIGMA_LOW = 0.001886
AUTO_SIGMA_HIGH = 0.001886


@dataclass
class DncnnConfig:
    """Nonexpansive DnCNN applied as ``D(Re O) + i D(Im O)``; null checkpoint = shipped weights."""

    name: str = "dncnn"
    #: Weights: a file, a Lightning ``.ckpt`` or the name of shipped weights;
    #: null: ``dncnn_realsn_default``.
    checkpoint: str | None = None
    #: Where the network runs: ``auto`` (the run's device), ``cpu``, ``cuda``.
    device: str = "auto"
    #: Side of the tiles the object is denoised in (bounds the activations' memory).
    tile_px: int = 512
    #: Halo around each tile; at least the net's receptive radius gives the
    #: whole-image result exactly.
    overlap_px: int = 32
    #: ``frozen``: the [0, 1] map fixed at the first call (keeps ``D``'s
    #: Lipschitz constant); ``minmax``: recomputed each call (PINE's code).
    normalisation: str = "frozen"

    def __post_init__(self) -> None:
        if int(self.tile_px) < 16:
            raise ConfigError(f"denoiser.tile_px = {self.tile_px} must be >= 16")
        if int(self.overlap_px) < 0:
            raise ConfigError(f"denoiser.overlap_px = {self.overlap_px} must be >= 0")
        if self.normalisation not in ("frozen", "minmax", "none"):
            raise ConfigError(
                f"denoiser.normalisation = {self.normalisation!r}; choose 'frozen' (min-max "
                "range of the first object, then fixed: the applied map is as Lipschitz as D), "
                "'minmax' (rescale Re and Im to [0, 1] on every call, as the PINE reference "
                "code; not nonexpansive) or 'none'"
            )
        dev = str(self.device)
        if dev not in ("auto", "cpu") and not dev.startswith("cuda"):
            raise ConfigError(
                f"denoiser.device = {dev!r}; use 'auto' (the run's device), 'cpu' or 'cuda[:N]'"
            )


def denoiser_device(device: str, run_device: str = "cpu") -> str:
    """Return the torch device for ``device`` ('auto' means the run's device)."""
    import torch

    dev = run_device if device == "auto" else device
    if str(dev).startswith("cuda") and not torch.cuda.is_available():
        if device == "auto":
            return "cpu"
        raise ConfigError(f"denoiser.device = {device!r} but CUDA is not available; use 'cpu'")
    return str(dev)


def build_dncnn(config: DncnnConfig, context: BuildContext) -> ComplexDenoiser:
    """Build the complex-object denoiser from a DnCNN checkpoint (default: shipped weights)."""
    from ptyframe.denoise.apply import ComplexDenoiser
    from ptyframe.denoise.weights import load_denoiser

    device = denoiser_device(str(config.device), str(getattr(context, "device", "cpu")))
    model = load_denoiser(config.checkpoint, device)
    return ComplexDenoiser(
        model,
        normalisation=config.normalisation,
        tile_px=int(config.tile_px),
        overlap_px=int(config.overlap_px),
        device=device,
    )


def _certificate(path: Path) -> dict[str, Any]:
    """Return the ``certificate`` of weights ``path``'s json sidecar ({} if none or unreadable)."""
    import json

    try:
        return json.loads(path.with_suffix(".json").read_text()).get("certificate") or {}
    except (OSError, ValueError):
        return {}


def certificate_line(stem: str | None = None) -> str:
    """Return one line on the shipped weights' certified and measured Lipschitz constants.

    Read from the weights' json sidecar (``benchmarks/denoise_certificate.py --write``), so
    listing plugins loads no network.
    """
    from ptyframe.denoise.weights import default_weights_path, shipped_weights

    path = shipped_weights().get(stem, default_weights_path()) if stem else default_weights_path()
    cert = _certificate(path)
    if "denoiser_lipschitz_bound" not in cert:
        return f"weights {path.stem}: no certificate recorded"
    frozen = cert.get("applied_map_jacobian_norm", {}).get("frozen", {})
    meas = f", measured <= {max(frozen.values()):.3f}" if frozen else ""
    return (
        f"weights {path.stem} ({cert.get('family', 'dncnn')}): Lip(D as applied, frozen "
        f"normalisation) <= {cert['denoiser_lipschitz_bound']:.4f} certified{meas}"
    )


@dataclass
class CplAutoConfig:
    """Noise-aware ``(1 - t) D_low + t D_high``, ``t`` frozen at the first call (``auto.py``).

    ``t`` null: from the scan's dose (photons per object pixel, ``dose.py``): 1 at or below
    ``dose_low``, 0 at or above ``dose_high``, log-linear between (a step if equal); when no
    dose was reported (``dose_high = 0`` or an engine that does not report it) from the MAD
    noise level ``sigma_hat`` of the first object (normalised units, 1 = the part's range) as
    ``clip((sigma_hat - sigma_low) / (sigma_high - sigma_low), 0, 1)``.
    """

    name: str = "cpl_auto"
    #: The net at ``t = 0`` (high dose): shipped name or weights file.
    low: str = "cpl_sigma15"
    #: The net at ``t = 1`` (low dose): shipped name or weights file.
    high: str = "cpl_blind"
    #: Photons per object pixel at or below which ``t = 1``.
    dose_low: float = AUTO_DOSE_LOW
    #: Photons per object pixel at or above which ``t = 0``.
    dose_high: float = AUTO_DOSE_HIGH
    #: MAD noise level at or below which ``t = 0`` (used without a dose).
    sigma_low: float = AUTO_SIGMA_LOW
    #: MAD noise level at or above which ``t = 1`` (used without a dose).
    sigma_high: float = AUTO_SIGMA_HIGH
    #: The mixing weight set by hand; null: from the dose (or the noise level).
    t: float | None = None
    #: Where the network runs: ``auto`` (the run's device), ``cpu``, ``cuda``.
    device: str = "auto"
    #: Side of the tiles the object is denoised in (bounds the activations' memory).
    tile_px: int = 512
    #: Halo around each tile; at least the net's receptive radius gives the
    #: whole-image result exactly.
    overlap_px: int = 32

    def __post_init__(self) -> None:
        DncnnConfig(tile_px=self.tile_px, overlap_px=self.overlap_px, device=self.device)
        if not 0.0 <= float(self.sigma_low) <= float(self.sigma_high):
            raise ConfigError(
                f"denoiser.sigma_low = {self.sigma_low}, sigma_high = {self.sigma_high}: need "
                "0 <= sigma_low <= sigma_high (equal: a step from t = 0 to t = 1)"
            )
        if not 0.0 <= float(self.dose_low) <= float(self.dose_high):
            raise ConfigError(
                f"denoiser.dose_low = {self.dose_low}, dose_high = {self.dose_high}: need "
                "0 <= dose_low <= dose_high (photons per object pixel; 0 and 0: use the MAD "
                "estimate instead)"
            )
        if self.t is not None and not 0.0 <= float(self.t) <= 1.0:
            raise ConfigError(f"denoiser.t = {self.t} must lie in [0, 1], or null (auto)")


def build_cpl_auto(config: CplAutoConfig, context: BuildContext) -> ComplexDenoiser:
    """Build the noise-aware mix of two certified nets (shipped stems or weights files)."""
    from ptyframe.denoise.auto import AutoMixDenoiser, ConvexMix
    from ptyframe.denoise.weights import load_denoiser

    device = denoiser_device(str(config.device), str(getattr(context, "device", "cpu")))
    mix = ConvexMix(load_denoiser(config.low, device), load_denoiser(config.high, device))
    return AutoMixDenoiser(
        mix,
        sigma_low=float(config.sigma_low),
        sigma_high=float(config.sigma_high),
        dose_low=float(config.dose_low),
        dose_high=float(config.dose_high),
        t_fixed=None if config.t is None else float(config.t),
        normalisation="frozen",
        tile_px=int(config.tile_px),
        overlap_px=int(config.overlap_px),
        device=device,
    )


def stored_bound(stem: str) -> float | None:
    """Return the certified ``Lip(D)`` bound stored with shipped weights ``stem`` (or None)."""
    from ptyframe.denoise.weights import shipped_weights

    path = shipped_weights().get(stem)
    if path is None:
        return None
    bound = _certificate(path).get("denoiser_lipschitz_bound")
    return None if bound is None else float(bound)


def auto_certificate_line(low: str = CplAutoConfig.low, high: str = CplAutoConfig.high) -> str:
    """Return the noise-aware mix's bound: ``max`` of the two nets' stored bounds."""
    b_low, b_high = stored_bound(low), stored_bound(high)
    if b_low is None or b_high is None:
        return f"(1-t) {low} + t {high}: no certificate recorded for one of them"
    return (
        f"(1-t) {low} + t {high}, t frozen at the first call: Lip(D as applied, frozen "
        f"normalisation) <= max({b_low:.4f}, {b_high:.4f}) = {max(b_low, b_high):.4f} certified"
    )


@hookimpl
def ptyframe_register(registry: ScopedRegistry) -> None:
    """Register the ``dncnn`` denoiser (any shipped or trained family; default weights' bound)."""
    from ptyframe.denoise.weights import default_weights_path, shipped_weights

    default = default_weights_path().stem
    others = [certificate_line(s) for s in shipped_weights() if s != default]
    doc = (
        "Nonexpansive-layer denoiser applied as D(Re O) + i D(Im O); default "
        + certificate_line()
        + "".join(f"; denoiser.checkpoint={o.removeprefix('weights ')}" for o in others)
    )
    registry.add_denoiser(DncnnConfig, build_dncnn, doc=doc)
    registry.add_denoiser(
        CplAutoConfig,
        build_cpl_auto,
        doc="Noise-aware certified denoiser: " + auto_certificate_line(),
    )
