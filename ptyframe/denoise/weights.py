"""Load DnCNN weights: the shipped default, a ptyframe ``.pt`` file or a Lightning ``.ckpt``.

Accepted files (all read with ``torch.load(weights_only=True)``, so nothing is unpickled but
tensors and plain containers):

* a ptyframe weights file (what ``ptyframe train-denoiser`` writes and the package ships)::

      {"format": "ptyframe.dncnn", "version": 1, "arch": {depth, channels, kernel_size,
       image_channels, structure}, "state_dict": {"layers.0.weight": ..., ...}, ...}

* a Lightning checkpoint of ``ptyframe_lightning.module.DenoiserModule`` (``state_dict`` keys
  prefixed ``model.``, RealSN buffers ``u``/``sigma``, the architecture under
  ``hyper_parameters["arch"]``): the RealSN estimates are replaced by the exact bound
  (``realsn.exact_normalise``);
* a bare state dict ``{"layers.<i>.weight", "layers.<i>.bias"}`` (optionally prefixed
  ``model.``/``module.``): the architecture is read from the shapes and the structure is taken
  as ``"residual"`` (``D = x - net(x)``, the usual DnCNN convention).

Both families are read (``ptyframe.denoise.models``): a record with ``arch.family = "cpl"``
builds a ``CplDenoiser`` (convex-potential layers, ``Lip(D) <= 1``); one without ``family`` a
DnCNN. ``load_denoiser("cpl_blind")`` also accepts the stem of shipped weights.

Plain weights whose Lipschitz bound exceeds ``1 + 1e-3`` are loaded but logged as a warning:
PINE's convergence argument assumes a nonexpansive denoiser.
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from ptyframe.denoise.cpl import FAMILY as CPL
from ptyframe.denoise.cpl import CplArch, CplDenoiser
from ptyframe.denoise.dncnn import DnCNN, DncnnArch, lipschitz_bound
from ptyframe.denoise.models import Denoiser, arch_record, family_of, make_arch
from ptyframe.errors import ConfigError, DataValidationError

log = logging.getLogger(__name__)

FORMAT = "ptyframe.dncnn"
DEFAULT_WEIGHTS = "dncnn_realsn_default.pt"
_LAYER_KEY = re.compile(r"^layers\.(\d+)\.(weight|bias|u|sigma)$")
_PREFIXES = ("model.", "module.", "net.", "_orig_mod.")


def default_weights_path() -> Path:
    """Return the path of the weights shipped inside the package."""
    return Path(__file__).resolve().parent / "weights" / DEFAULT_WEIGHTS


def shipped_weights() -> dict[str, Path]:
    """Return the weights files shipped in the package, by stem (``denoiser.checkpoint=<stem>``)."""
    folder = default_weights_path().parent
    return {p.stem: p for p in sorted(folder.glob("*.pt"))}


def save_weights(model: DnCNN | CplDenoiser, path: str | Path, **metadata: Any) -> Path:
    """Write ``model`` (plain, already normalised) as a ptyframe weights file; return the path."""
    if model.realsn:
        model = model.exported()
    sd = {k: v.detach().cpu().float().contiguous() for k, v in model.state_dict().items()}
    blob = {"format": FORMAT, "version": 1, "arch": arch_record(model), "state_dict": sd}
    blob.update(metadata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    return path


def _fix_hint() -> str:
    return (
        "Pass denoiser.checkpoint=<a .pt written by `ptyframe train-denoiser` or a Lightning "
        ".ckpt of its DenoiserModule, or the name of shipped weights: "
        f"{', '.join(shipped_weights())}>, or leave it unset (null) for the shipped default"
    )


def _read(path: Path) -> Any:
    if not path.exists():
        raise DataValidationError(
            f"denoiser checkpoint {str(path)!r} does not exist. {_fix_hint()}"
        )
    if path.is_dir():
        raise DataValidationError(
            f"denoiser checkpoint {str(path)!r} is a directory. {_fix_hint()}"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataValidationError(
            f"denoiser checkpoint {str(path)!r} is not a plain PyTorch weights file "
            f"(torch.load(weights_only=True) refused it: {first}). If it is your own "
            "checkpoint, re-save only its weights: torch.save(ckpt['state_dict'], 'model.pt')"
        ) from None
    except Exception as exc:  # torch raises many types for a non-torch file
        raise DataValidationError(
            f"denoiser checkpoint {str(path)!r} is not a PyTorch file "
            f"({type(exc).__name__}: {str(exc)[:200]}). {_fix_hint()}"
        ) from None


def _unprefix(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p) :], True
    return key


def _strip(sd: dict[str, Any]) -> dict[str, Any]:
    """Drop a common module prefix (``model.`` etc.) and anything that is not a layer tensor."""
    out: dict[str, Any] = {}
    for key, val in sd.items():
        k = _unprefix(key)
        if _LAYER_KEY.match(k) and isinstance(val, torch.Tensor):
            out[k] = val
    return out


def _cpl_from(raw: dict[str, Any], meta: dict[str, Any], where: str) -> CplDenoiser:
    """Build an exported ``CplDenoiser`` from a ptyframe file or a Lightning checkpoint."""
    sd = {_unprefix(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    try:
        arch = make_arch(meta)
    except ConfigError as exc:
        raise DataValidationError(f"{where}: bad architecture record {meta!r}: {exc}") from None
    if not isinstance(arch, CplArch):
        raise DataValidationError(f"{where}: the record {meta!r} is not a cpl architecture")
    is_realsn = "theta" in sd
    power_px = int(sd["layers.0.u"].shape[0]) if "layers.0.u" in sd else 32
    model = CplDenoiser(arch, realsn=is_realsn, power_px=power_px)
    try:
        model.load_state_dict(sd)
    except RuntimeError as exc:
        msg = " ".join(str(exc).split())[:300]
        raise DataValidationError(f"{where} does not match {arch.to_dict()}: {msg}") from None
    return model.exported() if is_realsn else model


def _infer_arch(sd: dict[str, torch.Tensor], structure: str, where: str) -> DncnnArch:
    idx = sorted({int(_LAYER_KEY.match(k).group(1)) for k in sd})  # type: ignore[union-attr]
    if not idx or idx != list(range(len(idx))) or "layers.0.weight" not in sd:
        raise DataValidationError(
            f"{where} holds no DnCNN layers (expected keys layers.0.weight, layers.0.bias, "
            f"..., got {sorted(sd)[:6]}). {_fix_hint()}"
        )
    w0 = sd["layers.0.weight"]
    if w0.dim() != 4:
        raise DataValidationError(f"{where}: layers.0.weight must be 4-D, got {tuple(w0.shape)}")
    try:
        return DncnnArch(
            depth=len(idx),
            channels=int(w0.shape[0]),
            kernel_size=int(w0.shape[-1]),
            image_channels=int(w0.shape[1]),
            structure=structure,
        )
    except ConfigError as exc:
        raise DataValidationError(f"{where}: {exc}") from None


def _arch_from(meta: Any, sd: dict[str, torch.Tensor], structure: str, where: str) -> DncnnArch:
    if isinstance(meta, dict):
        try:
            return DncnnArch(**{k: meta[k] for k in meta if k in DncnnArch.__dataclass_fields__})
        except (ConfigError, TypeError) as exc:
            raise DataValidationError(f"{where}: bad architecture record {meta!r}: {exc}") from None
    return _infer_arch(sd, structure, where)


def model_from_checkpoint(blob: Any, where: str = "checkpoint") -> Denoiser:
    """Build a plain, exactly normalised (if trained with RealSN) ``DnCNN`` from a loaded blob."""
    if not isinstance(blob, dict):
        raise DataValidationError(
            f"{where} holds a {type(blob).__name__}, not a dict of weights. {_fix_hint()}"
        )
    if "state_dict" in blob and isinstance(blob["state_dict"], dict):
        raw = blob["state_dict"]
        hp = blob.get("hyper_parameters")
        meta = blob.get("arch") or (hp.get("arch") if isinstance(hp, dict) else None)
    else:
        raw, meta = blob, None
    if isinstance(meta, dict) and family_of(meta) == CPL:
        return _cpl_from(raw, meta, where).eval()
    sd = _strip(raw)
    if not sd:
        raise DataValidationError(
            f"{where} holds no DnCNN layer tensors (keys like layers.0.weight); found "
            f"{sorted(map(str, raw))[:6]}. {_fix_hint()}"
        )
    arch = _arch_from(meta, sd, "residual", where)
    is_realsn = "layers.0.u" in sd
    power_px = int(sd["layers.0.u"].shape[0]) if is_realsn else 32
    model = DnCNN(arch, realsn=is_realsn, power_px=power_px)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    bad = [
        f"{k}: {tuple(sd[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        if bad:
            parts.append(f"wrong shapes {bad[:3]}")
        raise DataValidationError(
            f"{where} does not match a DnCNN {arch.to_dict()}: {'; '.join(parts)}. {_fix_hint()}"
        )
    model.load_state_dict(sd)
    if is_realsn:
        model = model.exported()
    else:
        bound = lipschitz_bound(model)
        if bound > 1.0 + 1e-3:
            log.warning(
                "%s: the network's Lipschitz bound is %.3g > 1; the denoiser is not provably "
                "nonexpansive (PINE's convergence argument assumes it is)",
                where,
                bound,
            )
    return model.eval()


def resolve_checkpoint(checkpoint: str | Path | None) -> Path:
    """Return the file for ``checkpoint``: a path, the stem of shipped weights, or the default."""
    if not checkpoint:
        return default_weights_path()
    shipped = shipped_weights()
    if str(checkpoint) in shipped and not Path(str(checkpoint)).exists():
        return shipped[str(checkpoint)]
    return Path(checkpoint).expanduser()


def load_denoiser(
    checkpoint: str | Path | None = None, device: str | torch.device = "cpu"
) -> DnCNN | CplDenoiser:
    """Return the denoiser in ``checkpoint`` (``None``: the shipped default) on ``device``.

    ``checkpoint`` may also be the stem of a shipped weights file (``shipped_weights``).
    Raises ``DataValidationError`` (with a fix) for a missing, non-torch or mismatched file.
    """
    path = resolve_checkpoint(checkpoint)
    where = f"denoiser checkpoint {str(path)!r}"
    if checkpoint is None and not path.exists():
        raise DataValidationError(
            f"the shipped denoiser weights {str(path)!r} are missing from this installation; "
            "reinstall ptyframe, or pass denoiser.checkpoint=<your weights>"
        )
    model = model_from_checkpoint(_read(path), where)
    for prm in model.parameters():
        prm.requires_grad_(False)
    return model.to(device)
