"""Register the denoiser: kind ``denoiser``, name ``dncnn`` (nonexpansive DnCNN, PINE eq. 22)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ptyframe.errors import ConfigError
from ptyframe.hookspecs import hookimpl

if TYPE_CHECKING:
    from ptyframe.denoise.apply import ComplexDenoiser
    from ptyframe.registry import BuildContext, ScopedRegistry


@dataclass
class DncnnConfig:
    """Nonexpansive DnCNN applied as ``D(Re O) + i D(Im O)``; null checkpoint = shipped weights."""

    name: str = "dncnn"
    checkpoint: str | None = None
    device: str = "auto"
    tile_px: int = 512
    overlap_px: int = 32
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


def resolve_device(device: str, run_device: str = "cpu") -> str:
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

    device = resolve_device(str(config.device), str(getattr(context, "device", "cpu")))
    model = load_denoiser(config.checkpoint, device)
    return ComplexDenoiser(
        model,
        normalisation=config.normalisation,
        tile_px=int(config.tile_px),
        overlap_px=int(config.overlap_px),
        device=device,
    )


def certificate_line(stem: str | None = None) -> str:
    """Return one line on the shipped weights' certified and measured Lipschitz constants.

    Read from the weights' json sidecar (``benchmarks/denoise_certificate.py --write``), so
    listing plugins loads no network.
    """
    import json

    from ptyframe.denoise.weights import default_weights_path, shipped_weights

    path = shipped_weights().get(stem, default_weights_path()) if stem else default_weights_path()
    side = path.with_suffix(".json")
    try:
        cert = json.loads(side.read_text()).get("certificate") or {}
    except (OSError, ValueError):
        cert = {}
    if "denoiser_lipschitz_bound" not in cert:
        return f"weights {path.stem}: no certificate recorded"
    frozen = cert.get("applied_map_jacobian_norm", {}).get("frozen", {})
    meas = f", measured <= {max(frozen.values()):.3f}" if frozen else ""
    return (
        f"weights {path.stem} ({cert.get('family', 'dncnn')}): Lip(D as applied, frozen "
        f"normalisation) <= {cert['denoiser_lipschitz_bound']:.4f} certified{meas}"
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
