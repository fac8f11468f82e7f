"""Move probes by sub-pixel amounts: the one place engines and forward models shift a probe.

A position ``p`` splits into an integer corner and a fraction ``f`` in ``[0, 1)``
(``ptyframe.physics.patches``); the object window is cut at the corner and the probe is moved
by ``f`` with the Fourier shift theorem (``ptyframe.physics.fft``)::

    T_f P = F^-1[ F(P) * r_f ],    r_f(k) = exp(-2 pi i k.f)  (separable: r_f = ry (x) rx)

``T_f`` is unitary and ``T_f^* = T_-f`` (multiply by ``conj(r_f)``), so a step computed for the
shifted probe maps back to the probe by ``T_-f`` exactly (the adjoint of the forward model).

``FourierProbe`` serves the sequential PIE sweeps: it keeps the probe's spectrum ``F(P)``, so
each position costs one inverse FFT to make ``T_f P`` and one FFT to fold a step back
(``F(P) += F(step) * conj(r_f)``), instead of an FFT pair for each.
"""

from __future__ import annotations

import torch

from ptyframe.physics.fft import fourier_shift, shift_ramp_factors


def shifted_probes(probe: torch.Tensor, fractions_px: torch.Tensor) -> torch.Tensor:
    """Return ``T_f_b P_k`` as ``[B, K, M, M]``; no FFT where every ``f_b`` is zero.

    When ``fractions_px`` requires grad (position refinement) the shift is always applied, so
    the gradient with respect to the positions exists at integer positions.
    """
    if not fractions_px.requires_grad and not bool(torch.any(fractions_px != 0)):
        return probe.unsqueeze(0).expand(fractions_px.shape[0], *probe.shape)
    return fourier_shift(probe, fractions_px)


def shift_each(x: torch.Tensor, shifts_px: torch.Tensor) -> torch.Tensor:
    """Return ``T_s_b x_b`` for ``x`` ``[B, ..., M, N]`` and one shift ``[B, 2]`` per item."""
    ry, rx = shift_ramp_factors(shifts_px, (x.shape[-2], x.shape[-1]), x.dtype)
    extra = x.dim() - 3
    ramp = (ry[:, :, None] * rx[:, None, :]).reshape(ry.shape[0], *([1] * extra), *x.shape[-2:])
    return torch.fft.ifft2(torch.fft.fft2(x) * ramp)


class FourierProbe:
    """A probe ``[K, M, N]`` held as its spectrum, shifted per position by separable ramps."""

    def __init__(
        self,
        probe: torch.Tensor,
        fractions_px: torch.Tensor,
        ramps: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        """``ramps``: the ``(ry, rx)`` of ``shift_ramp_factors`` for these fractions, if known
        (the scan's ``ScanWindows`` keeps them across sweeps)."""
        self.spectrum = torch.fft.fft2(probe)
        if ramps is None:
            ramps = shift_ramp_factors(
                fractions_px, (probe.shape[-2], probe.shape[-1]), probe.dtype
            )
        self.ry, self.rx = ramps
        self._buf = torch.empty_like(self.spectrum)

    def ramp(self, j: int) -> torch.Tensor:
        """Return ``r_f`` ``[M, N]`` of position ``j``."""
        return self.ry[j, :, None] * self.rx[j, None, :]

    def shifted(self, j: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Return ``T_f_j P`` ``[K, M, N]`` (into ``out`` if given)."""
        torch.mul(self.spectrum, self.ramp(j), out=self._buf)
        return torch.fft.ifft2(self._buf, out=out)

    def add_shifted_back(self, j: int, step: torch.Tensor) -> None:
        """``P <- P + T_-f_j step`` for a real-space ``step`` ``[K, M, N]``."""
        torch.fft.fft2(step, out=self._buf)
        self.spectrum.addcmul_(self._buf, self.ramp(j).conj_physical_())

    def probe(self) -> torch.Tensor:
        """Return the probe ``P`` ``[K, M, N]`` in real space."""
        return torch.fft.ifft2(self.spectrum)


class PositionShifts:
    """The sub-pixel shifts ``T_f_b`` of a scan, kept as separable ramps ``[N, M]``, ``[N, W]``.

    ``shift(probe, idx)`` makes the ``B`` shifted probes from one FFT of the probe and ``B``
    inverse FFTs; ``shift_back(x, idx)`` applies ``T_-f_b`` to each of ``B`` items.
    """

    def __init__(
        self, fractions_px: torch.Tensor, window: tuple[int, int], dtype: torch.dtype
    ) -> None:
        self.ry, self.rx = shift_ramp_factors(fractions_px, window, dtype)

    def ramps(self, idx: torch.Tensor) -> torch.Tensor:
        """Return ``r_f_b`` ``[B, 1, M, W]`` of positions ``idx``."""
        i = idx.to(self.ry.device)
        return (self.ry[i][:, :, None] * self.rx[i][:, None, :]).unsqueeze(1)

    def shift(
        self, probe: torch.Tensor, idx: torch.Tensor, ramps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return ``T_f_b P`` ``[B, K, M, W]`` for a probe ``[K, M, W]``.

        ``ramps``: ``self.ramps(idx)`` when the caller has them already.
        """
        if ramps is None:
            ramps = self.ramps(idx)
        return torch.fft.ifft2(torch.fft.fft2(probe).unsqueeze(0) * ramps)

    def shift_back(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Return ``T_-f_b x_b`` for ``x`` ``[B, K, M, W]``."""
        return torch.fft.ifft2(torch.fft.fft2(x) * self.ramps(idx).conj())
