"""Apply a real-image denoiser to complex objects: ``D(O) = D(Re O) + i D(Im O)`` (PINE eq. 22).

Normalisation. Each part ``p`` (the real and the imaginary part of each object in the batch)
is mapped affinely to the network's [0, 1] training range, denoised, and mapped back::

    A(p) = (p - lo) / s,     D_p(p) = A^{-1}(D(A(p))) = lo + s * D((p - lo) / s).

* ``"frozen"`` (default): ``lo = min p`` and ``s = max p - lo`` are taken from the *first*
  object this denoiser sees that is not constant in every part (for PINE: the object after
  the first sweep) and then kept for every later call of the run. A part that is constant at
  that moment (e.g. the imaginary part of a real object) is passed through unchanged for the
  rest of the run; an object constant in every part is returned unchanged and freezes
  nothing. A resumed run freezes again on its first object.
* ``"minmax"`` (the PINE reference code): ``lo`` and ``s`` are recomputed from every input; a
  constant part (``s <= 1e-12 * max(1, |lo|)``) is returned unchanged.
* ``"none"``: the parts go to ``D`` as they are.

Theorem: with ``"frozen"`` (or ``"none"``), ``Lip(O -> D_applied(O)) = Lip(D)`` bound-wise,
where ``D_applied(O) = D_Re(Re O) + i D_Im(Im O)`` and ``C^n`` carries the Euclidean norm of
``R^{2n}``. Proof: for a fixed ``lo, s > 0``,
``||D_p(p) - D_p(q)|| = s ||D(A p) - D(A q)|| <= s L ||A p - A q|| = L ||p - q||`` (``A`` is a
similarity with ratio ``1/s``, so conjugating by it keeps Lipschitz constants); then
``||D_applied(O) - D_applied(O')||^2 = ||D_Re(Re O) - D_Re(Re O')||^2 + ||D_Im(...)||^2
<= L^2 (||Re(O - O')||^2 + ||Im(O - O')||^2) = L^2 ||O - O'||^2``, and the same sum runs over
the objects of a batch. With a nonexpansive ``D`` (the ``cpl`` family, ``cpl.py``) the applied
map is nonexpansive, and so is PINE's ``O -> (1 - rho) O + rho D_applied(O)``
(``Lip <= 1 - rho + rho L <= 1``). With ``"minmax"`` ``lo`` and ``s`` depend on the input:
the map is not nonexpansive in general (we measured local constants above 1 with the residual
net). The statement is about exact arithmetic; the network runs in float32.

Tiling: the DnCNN is zero-padded with a receptive radius of ``depth * (k - 1) / 2`` pixels,
so a tile cut out with a halo of at least that many pixels gives *exactly* the whole-image
output in its core (only float rounding differs). Each ``tile_px x tile_px`` core is
processed with an ``overlap_px`` halo on every side (clipped at the object's border, where
the whole-image run also sees zero padding) and the cores are written side by side; no
blending weights are needed because overlapping outputs agree. With ``overlap_px`` below the
receptive radius the seams differ slightly from the whole-image result (a warning is logged).
Network activations take ``O(batch * channels * (tile_px + 2 overlap_px)^2)`` floats whatever
the object size, besides a few object-sized real buffers; untiled, the activations grow with
the object (``channels`` object-sized float32 maps per layer).

Shapes: ``obj`` is complex ``[..., Ny, Nx]`` (complex64 or complex128; a real tensor is
denoised as one part); the result has the same shape, dtype and device. The network runs in
float32 on ``device`` under ``torch.no_grad()``, Re and Im of every leading index in one batch.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from ptyframe.errors import ConfigError

log = logging.getLogger(__name__)

NORMALISATIONS = ("frozen", "minmax", "none")


def _receptive_radius(model: nn.Module) -> int | None:
    radius = getattr(model, "receptive_radius", None)
    return int(radius) if radius is not None else None


def apply_tiled(model: nn.Module, x: Tensor, tile_px: int, overlap_px: int) -> Tensor:
    """Return ``model(x)`` for ``x`` float ``[B, C, H, W]``, computed tile by tile.

    Cores of ``tile_px`` with ``overlap_px`` halos; see the module docstring.
    """
    _, _, h, w = x.shape
    if h <= tile_px and w <= tile_px:
        return model(x)
    # a pixel-unshuffling net (DncnnArch.downsample = s) needs tiles aligned to its s-grid
    s = int(getattr(getattr(model, "arch", None), "downsample", 1) or 1)
    tile_px, overlap_px = -(-tile_px // s) * s, -(-overlap_px // s) * s
    out = torch.empty_like(x)
    for y0 in range(0, h, tile_px):
        y1 = min(y0 + tile_px, h)
        ya, yb = max(y0 - overlap_px, 0), min(y1 + overlap_px, h)
        for x0 in range(0, w, tile_px):
            x1 = min(x0 + tile_px, w)
            xa, xb = max(x0 - overlap_px, 0), min(x1 + overlap_px, w)
            res = model(x[..., ya:yb, xa:xb])
            out[..., y0:y1, x0:x1] = res[..., y0 - ya : y1 - ya, x0 - xa : x1 - xa]
    return out


def minmax_forward(p: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Rescale each ``[..., H, W]`` image to [0, 1]; return (scaled, lo, scale, constant mask).

    ``lo`` and ``scale`` are ``[..., 1, 1]``; constant images get scale 1 and are flagged.
    """
    lo = p.amin(dim=(-2, -1), keepdim=True)
    hi = p.amax(dim=(-2, -1), keepdim=True)
    scale = hi - lo
    constant = scale <= 1e-12 * torch.clamp(lo.abs(), min=1.0)
    scale = torch.where(constant, torch.ones_like(scale), scale)
    return (p - lo) / scale, lo, scale, constant


def minmax_inverse(q: Tensor, lo: Tensor, scale: Tensor) -> Tensor:
    """Undo ``minmax_forward``: ``lo + scale * q``."""
    return lo + scale * q


def frozen_range(p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``(lo, scale, constant)`` ``[..., 1, 1]`` to freeze from parts ``p`` ``[..., H, W]``.

    Min-max of each part; a part that is constant now is flagged and passed through unchanged
    by the frozen map (a fixed map, the identity, so the Lipschitz argument is unaffected).
    """
    _, lo, scale, constant = minmax_forward(p)
    return lo, scale, constant


def object_parts(obj: Tensor) -> Tensor:
    """Return the real parts the net sees, ``[P, H, W]``: Re and Im of every leading index of
    a complex ``obj`` ``[..., H, W]`` (interleaved), or each leading index of a real one."""
    parts = torch.stack([obj.real, obj.imag], dim=-3) if obj.is_complex() else obj[..., None, :, :]
    return parts.reshape(-1, *parts.shape[-2:])


class ComplexDenoiser:
    """Denoise complex objects part by part with a real-image denoiser (PINE eq. 22).

    ``model`` maps float32 ``[B, 1, H, W]`` to the same shape (a ``DnCNN``).
    """

    def __init__(
        self,
        model: nn.Module,
        normalisation: str = "frozen",
        tile_px: int = 512,
        overlap_px: int = 32,
        device: str | torch.device = "cpu",
    ) -> None:
        if normalisation not in NORMALISATIONS:
            raise ConfigError(
                f"denoiser normalisation {normalisation!r} unknown; choose one of {NORMALISATIONS}"
            )
        if tile_px < 1 or overlap_px < 0:
            raise ConfigError(
                f"denoiser tile_px must be >= 1 and overlap_px >= 0, got {tile_px}, {overlap_px}"
            )
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.channels_last = self.device.type == "cpu"
        if self.channels_last:
            # Module.to takes memory_format (torch's stubs lack it): 4-D weights channels-last
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.normalisation = normalisation
        self.frozen: tuple[Tensor, Tensor, Tensor] | None = None
        self.differentiable = False  # True: no torch.no_grad (for Jacobian checks)
        self.tile_px = int(tile_px)
        self.overlap_px = int(overlap_px)
        radius = _receptive_radius(model)
        if radius is not None and self.overlap_px < radius:
            log.warning(
                "denoiser overlap_px=%d is below the network's receptive radius %d: tiled "
                "output differs from the whole-image output near tile seams; set "
                "denoiser.overlap_px=%d for exact stitching",
                self.overlap_px,
                radius,
                radius,
            )

    def denoise_real(self, images: Tensor) -> Tensor:
        """Return ``D`` applied to float images ``[B, H, W]`` (no normalisation), float32."""
        x = images.to(self.device, torch.float32)[:, None]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.set_grad_enabled(self.differentiable and torch.is_grad_enabled()):
            y = apply_tiled(self.model, x, self.tile_px, self.overlap_px)
        return y[:, 0].contiguous()

    def freeze(self, obj: Tensor) -> bool:
        """Freeze ``lo, scale`` from ``obj`` unless every part is constant; return if it did."""
        work = object_parts(obj).to(self.device).detach()
        rng = frozen_range(work)
        if bool(rng[2].all()):
            return False
        self.frozen = rng
        return True

    def state_dict(self) -> dict[str, Any]:
        """Return the run state (the frozen normalisation range, once set), for resume."""
        return {} if self.frozen is None else {"frozen": [t.detach().cpu() for t in self.frozen]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        frozen = state.get("frozen")
        if frozen is not None:
            lo, scale, constant = (t.to(self.device) for t in frozen)
            self.frozen = (lo, scale, constant)

    def scalars(self) -> dict[str, float]:
        """Return per-run numbers for the history (none for a fixed net)."""
        return {}

    def _frozen_apply(self, work: Tensor) -> Tensor:
        assert self.frozen is not None
        lo, scale, constant = self.frozen
        if lo.shape[0] != work.shape[0]:
            raise ConfigError(
                f"the frozen denoiser normalisation was set for {lo.shape[0]} object parts, "
                f"this object has {work.shape[0]}; build a new denoiser (or call freeze()) for "
                "a different object stack"
            )
        den = self.denoise_real((work - lo) / scale).to(work.dtype)
        return torch.where(constant, work, minmax_inverse(den, lo, scale))

    def __call__(self, obj: Tensor) -> Tensor:
        """Return ``D(Re O) + i D(Im O)`` with the shape, dtype and device of ``obj``."""
        if obj.dim() < 2:
            raise ConfigError(f"denoiser input must be [..., Ny, Nx], got shape {tuple(obj.shape)}")
        if self.normalisation == "frozen" and self.frozen is None and not self.freeze(obj):
            return obj.clone()  # constant in every part: nothing to denoise, nothing frozen
        with torch.set_grad_enabled(self.differentiable and torch.is_grad_enabled()):
            is_complex = obj.is_complex()
            real_dtype = obj.real.dtype if is_complex else obj.dtype
            work = object_parts(obj).to(self.device)
            if self.normalisation == "frozen":
                out = self._frozen_apply(work)
            elif self.normalisation == "minmax":
                # scaling in the object's own precision (float32 for complex64)
                scaled, lo, scale, constant = minmax_forward(work)
                den = self.denoise_real(scaled).to(work.dtype)
                del scaled
                out = torch.where(constant, work, minmax_inverse(den, lo, scale))
            else:
                out = self.denoise_real(work)
            lead = (*obj.shape[:-2], 2 if is_complex else 1)
            out = out.to(device=obj.device, dtype=real_dtype).reshape(*lead, *obj.shape[-2:])
            if is_complex:
                return torch.complex(out[..., 0, :, :], out[..., 1, :, :])
            return out[..., 0, :, :]
