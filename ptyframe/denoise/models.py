"""The two denoiser families behind one interface: build from an arch record, bound ``Lip(D)``.

* ``dncnn`` (``dncnn.py``): DnCNN with RealSN layers, ``structure`` residual (``D = Id - N``,
  ``Lip(D) <= 1 + Lip(N)``) or averaged (``D = (Id + N)/2``, ``Lip(D) <= (1 + Lip(N))/2``);
* ``cpl`` (``cpl.py``): convex-potential layers, ``Lip(D) <= 1`` by construction.

An arch record is a plain dict (what weights files and Lightning hyper-parameters store); a
record without ``family`` is a DnCNN (the format before the ``cpl`` family existed).
"""

from __future__ import annotations

from typing import Any

from ptyframe.denoise import cpl, dncnn
from ptyframe.errors import ConfigError

FAMILIES = ("dncnn", cpl.FAMILY)

#: An image denoiser of either family.
Denoiser = dncnn.DnCNN | cpl.CplDenoiser


def family_of(arch: dict[str, Any] | None) -> str:
    """Return the family named by an arch record (``dncnn`` when it names none)."""
    fam = str((arch or {}).get("family", "dncnn"))
    if fam not in FAMILIES:
        raise ConfigError(f"denoiser family {fam!r} unknown; choose one of {FAMILIES}")
    return fam


def make_arch(arch: dict[str, Any] | None) -> dncnn.DncnnArch | cpl.CplArch:
    """Return the arch dataclass for a record (raises ``ConfigError`` for unknown fields)."""
    rec = dict(arch or {})
    fam = family_of(rec)
    if fam == cpl.FAMILY:
        return cpl.CplArch(**rec)
    rec.pop("family", None)
    try:
        return dncnn.DncnnArch(**rec)
    except TypeError as exc:
        raise ConfigError(f"bad DnCNN architecture {rec!r}: {exc}") from None


def build_model(arch: dict[str, Any] | None, realsn: bool = False, power_px: int = 32) -> Denoiser:
    """Return an untrained model of the record's family."""
    a = make_arch(arch)
    if isinstance(a, cpl.CplArch):
        return cpl.CplDenoiser(a, realsn=realsn, power_px=power_px)
    return dncnn.DnCNN(a, realsn=realsn, power_px=power_px)


def arch_record(model: Denoiser) -> dict[str, Any]:
    """Return the model's arch record (with ``family``)."""
    rec = dict(model.arch.to_dict())
    rec.setdefault("family", "dncnn")
    return rec


def denoiser_bound(model: Denoiser, grid: int = 128) -> float:
    """Return the rigorous bound on ``Lip(D)`` of the image denoiser ``model``."""
    if isinstance(model, cpl.CplDenoiser):
        return cpl.lipschitz_bound(model, grid)
    return dncnn.denoiser_lipschitz_bound(model, grid)


def certificate(model: Denoiser, grid: int = 128) -> dict[str, Any]:
    """Return the numbers that certify ``model``: family, bound on ``Lip(D)``, per-layer data."""
    out: dict[str, Any] = {"family": arch_record(model)["family"]}
    if isinstance(model, cpl.CplDenoiser):
        out["denoiser_lipschitz_bound"] = cpl.lipschitz_bound(model, grid)
        out["layer_norm_bounds"] = cpl.weight_norm_bounds(model, grid)
        out["step_times_norm_sq"] = cpl.step_margins(model, grid)
        out["statement"] = "Lip(D) <= prod_k max(1, t_k S_k^2 - 1) (convex-potential layers)"
    else:
        out["network_lipschitz_bound"] = dncnn.lipschitz_bound(model, grid)
        out["denoiser_lipschitz_bound"] = dncnn.denoiser_lipschitz_bound(model, grid)
        out["layer_norm_bounds"] = dncnn.layer_norm_bounds(model, grid)
        out["statement"] = (
            "Lip(D) <= 1 + Lip(N) (residual)"
            if model.arch.structure == "residual"
            else "Lip(D) <= (1 + Lip(N)) / 2 (averaged)"
        )
    return out
