"""Precondition the autodiff engine's object and probe gradients by the Gauss-Newton diagonal.

Why: a gradient step ``x <- x - lr g`` on ``L = D / N_d`` has a scale set by the photon count
of the data and the probe's power, and Adam's element-wise normalisation gives every object
pixel the same step ``~lr`` whether it is lit or dark, so neither has a learning rate that
works from a cold start on every data set (measured in ``benchmarks/autodiff_study.py``).
Dividing the gradient by the diagonal of the Gauss-Newton Hessian makes the step
dimensionless: for an exit wave ``psi_b = P_b O_b`` (the multislice product for thick
objects) and a unitary propagator to the detector, the amplitude least-squares term
(Adorym supp. eq. S14) has the torch gradient ``dL/dO = c/N_d sum_b conj(P_b) (psi_b -
psi'_b)`` (``psi'`` the exit wave with its modulus replaced by the measurement, ``c =
Loss.curvature``: 2 for LSQ) and the Gauss-Newton diagonal::

    H_O(r) = c/N_d S sum_b sum_k |P_k(r - r_b)|^2      (the batch's illumination, S slices)
    H_P(r) = c/N_d sum_b prod_j |O_j(r + r_b)|^2        (the object's transmitted power)

so that ``O <- O - lr g_O / (H_O + delta max|P|^2 c/N_d)`` with ``lr = 1`` is the weighted
average over the batch of the PIE projections ``conj(P_b)(psi'_b - psi_b)/|P_b|^2``: rPIE's
regularised step (Maiden, Johnson & Li 2017, eq. 4: ``(1 - a)|P|^2 + a max|P|^2`` in the
denominator) for a minibatch, and the diagonal preconditioner of LSQML (Odstrcil et al.
2018). The probe has ``delta max H_P``. For Poisson the near-solution curvature is twice as
large (``c = 4 s``). Other unknowns (refractive index, positions, geometry) are not
preconditioned and keep Adam.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ptyframe.errors import ConfigError
from ptyframe.physics.base import Batch, ForwardModel
from ptyframe.physics.multislice import PtychoModel
from ptyframe.physics.patches import extract_patches, scatter_add_patches, split_positions

#: ``{name: (H without c/N_d, reference or None)}`` (see ``curvature``).
Curvature = dict[str, tuple[torch.Tensor, float | None]]

#: The unknowns a ``PtychoModel`` can precondition (complex transmission, probe modes).
PRECONDITIONED = ("object", "probe")


@dataclass
class PreconditionConfig:
    """Gauss-Newton diagonal preconditioning of the object and probe gradients."""

    enabled: bool = True
    #: rPIE-like regularisation of the object step: ``+ delta_object * max|P|^2``.
    delta_object: float = 0.5
    #: Regularisation of the probe step: ``+ delta_probe * max H_P``.
    delta_probe: float = 0.5

    def __post_init__(self) -> None:
        if not (self.delta_object > 0 and self.delta_probe > 0):
            raise ConfigError(
                "autodiff.precondition.delta_object and delta_probe must be > 0 (e.g. 0.1)"
            )


def supports(model: ForwardModel, names: list[str]) -> bool:
    """Return whether ``model`` can precondition every unknown in ``names``.

    It must be a ``PtychoModel`` (an exit wave ``probe x object``, whose curvature this
    module knows) and the names its object or probe.
    """
    return isinstance(model, PtychoModel) and all(n in PRECONDITIONED for n in names)


def curvature(model: PtychoModel, v: dict[str, torch.Tensor], batch: Batch) -> Curvature:
    """Return ``{name: (H without c/N_d, reference or None)}`` for ``object``/``probe`` in ``v``.

    ``H_O`` ``[Ny, Nx]``, reference ``max_r sum_k |P_k|^2``; ``H_P`` ``[M, M]``, reference None
    (``max H_P`` is taken after the ranks' sums). See the module docstring.
    """
    out: Curvature = {}
    with torch.no_grad():
        probe = model.probe_at(v, batch.angle)
        pos = model.positions(v, batch)
        corners, frac = split_positions(pos)
        window = (probe.shape[-2], probe.shape[-1])
        b = model.buffer_px
        if "object" in v:
            ny, nx = v["object"].shape[-2:]
            lit = incident_power(model, v, batch, probe, corners, frac)  # [B, S, M, M]
            illum = torch.zeros(
                (lit.shape[1], ny + 2 * b, nx + 2 * b), dtype=lit.dtype, device=lit.device
            )
            scatter_add_patches(illum, lit, corners)
            # S slices each explain the whole residual: a full step on all of them overshoots
            # up to S-fold, so each takes 1/S of it (block Jacobi).
            illum = illum[:, b : b + ny, b : b + nx] * lit.shape[1]
            peak = float((probe.real.square() + probe.imag.square()).sum(dim=0).max())
            out["object"] = (illum, peak)
        if "probe" in v:
            slices = model.slices(v, batch.angle)
            slices = model.padded(slices)
            chunks = extract_patches(slices, corners, window)  # [B, S, M, M]
            power = (chunks.real.square() + chunks.imag.square()).prod(dim=1).sum(dim=0)
            out["probe"] = (power, None)
    return out


def incident_power(
    model: PtychoModel,
    v: dict[str, torch.Tensor],
    batch: Batch,
    probe: torch.Tensor,
    corners: torch.Tensor,
    frac: torch.Tensor,
) -> torch.Tensor:
    """Return ``sum_k |psi_j,k|^2`` ``[B, S, M, M]``: the wave arriving at each slice ``j``."""
    psi = model.farfield.shifted_probes(probe, frac)  # [B, K, M, M]
    n = int(v["object"].shape[0])
    powers = [(psi.real.square() + psi.imag.square()).sum(dim=1)]
    if n > 1:
        window = (probe.shape[-2], probe.shape[-1])
        slices = model.padded(model.slices(v, batch.angle))
        chunks = extract_patches(slices, corners, window)  # [B, S, M, M]
        dz = model.slice_distances(v)
        for j in range(n - 1):
            psi = psi * chunks[:, j : j + 1]
            if not model.config.pure_projection:
                d = dz[j] if isinstance(dz, torch.Tensor) else dz
                psi = model.slice_prop(psi, d, model.pixel_size_m, model.wavelength_m)
            powers.append((psi.real.square() + psi.imag.square()).sum(dim=1))
    return torch.stack(powers, dim=1)


def precondition(
    grads: dict[str, torch.Tensor],
    curv: Curvature,
    scales: dict[str, float],
    factor: float,
    config: PreconditionConfig,
) -> None:
    """Divide ``grads`` (of ``value / scale``) in place by ``scale^2 factor (H + delta ref)``.

    ``factor = c / N_d``; ``curv`` as ``curvature`` returned it, summed over ranks.
    """
    for name, (h, ref) in curv.items():
        if name not in grads:
            continue
        delta = config.delta_object if name == "object" else config.delta_probe
        peak = float(h.max()) if ref is None else float(ref)
        floor = delta * peak if peak > 0 else 1.0
        denom = (h + floor) * (factor * scales[name] ** 2)
        grads[name] = grads[name] / denom.to(grads[name].real.dtype)
