"""Fix the reconstruction's ambiguities: changes that leave every modelled pattern the same.

Ptychography determines object and probe only up to such transformations; engines fix them
so that runs are comparable. Shared by every engine that offers ``center_probe`` (ePIE/rPIE,
mPIE, the minibatch engines and plugins such as RAAR).
"""

from __future__ import annotations

import torch

from ptyframe.state import ReconstructionState


def center_probe(state: ReconstructionState) -> tuple[int, int]:
    """Roll probe and object by whole pixels so the probe's intensity centroid is centred.

    Rolling both by the same ``s`` keeps every exit wave a shifted copy of itself, so every
    modelled intensity is unchanged. Returns the applied shift ``(sy, sx)``.
    """
    probe = state.probe
    inten = (probe.real.square() + probe.imag.square()).sum(0)
    total = float(inten.sum())
    if total <= 0:
        return (0, 0)
    m, n = inten.shape
    cy = float((inten.sum(1) * torch.arange(m, dtype=inten.dtype, device=inten.device)).sum())
    cx = float((inten.sum(0) * torch.arange(n, dtype=inten.dtype, device=inten.device)).sum())
    sy = int(round(m // 2 - cy / total))
    sx = int(round(n // 2 - cx / total))
    if sy or sx:
        state.probe.copy_(torch.roll(probe, (sy, sx), dims=(-2, -1)))
        state.object.copy_(torch.roll(state.object, (sy, sx), dims=(-2, -1)))
    return (sy, sx)
