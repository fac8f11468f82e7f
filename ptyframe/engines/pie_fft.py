"""The 2-D DFTs of one fused PIE sweep, planned once on fixed buffers (FFTW when present).

A fused sweep (``PieEngine._sweep_fused``) transforms the same few ``[K, M, N]`` buffers at
every position, so the transforms are planned once on those buffers and only executed per
position. All four are *unscaled* DFTs over the last two axes, ``D x = sum x e^{-2 pi i k.r/N}``
and its adjoint ``D^H`` (no ``1/N``); the kernels of ``ptyframe.engines.kernels`` fold the
scale factors into passes they make anyway (``modulus_delta*`` multiplies by ``1/sqrt(N)`` and
``1/N``, ``ramp_shift`` by ``1/N``), so no transform makes a pass of its own for scaling:

* ``forward``: ``wave = D psi`` (the far field, ``sqrt(N)`` times the unitary one);
* ``inverse``: ``psi = D^H wave`` (``wave`` may be overwritten);
* ``shift``: ``shifted = D^H spec`` (``spec`` already holds ``F(P) r_f / N``);
* ``fold``: ``spec = D wave`` (the probe step's spectrum, as ``torch.fft.fft2``).

``kind`` says which library runs them, as ``ptyframe.engines.backend`` resolved it: ``fftw``
(pyFFTW's plans on one thread) or ``torch`` (``torch.fft`` with unscaled norms and ``out=``,
which does not plan by timing). The sweep's result is the same to float rounding either way
(``benchmarks/fft_pairs.py`` and ``benchmarks/epie_sweep.py`` time both). FFTW's planner flag
comes from the run's ``deterministic`` switch:

* ``FFTW_ESTIMATE`` (``deterministic=true``, the default), made with FFTW's wisdom set aside
  (``without_wisdom``), so the plan depends only on the transform's shape, strides, alignment
  and the CPU, never on timings or on what the process planned before: every process on a
  machine runs the same algorithm and gets the same bits. (FFTW plans an ``FFTW_ESTIMATE``
  problem from the wisdom a ``FFTW_MEASURE`` plan of the same problem left in the process,
  so the flag alone is not enough.)
* ``FFTW_MEASURE`` (``deterministic=false``) times candidate algorithms and keeps the
  fastest; two processes may pick different ones, whose results differ in the last bits, so
  two runs (or a run and its resume) need not agree.

With FFTW the buffers' rows are padded (``ROW_PAD`` elements past ``N``): a column transform
over rows whose stride is a power of two in bytes thrashes the cache, and the estimate
planner (which does not time) takes the plain strided algorithm there; with the padded stride
the estimate plan runs about as fast as a measured one (``benchmarks/fft_pairs.py``). The
buffers are then views ``[K, M, N]`` of ``[K, M, N + ROW_PAD]`` blocks; the kernels take any
strides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
import torch

#: Elements past ``N`` in each row of an FFTW buffer (a stride that is no power of two).
ROW_PAD = 8


def _buffer(shape: tuple[int, ...], dtype: torch.dtype, pad: int) -> torch.Tensor:
    """Return a ``shape`` view whose rows lie ``shape[-1] + pad`` elements apart."""
    if not pad:
        return torch.empty(shape, dtype=dtype)
    return torch.empty((*shape[:-1], shape[-1] + pad), dtype=dtype)[..., : shape[-1]]


@contextmanager
def without_wisdom() -> Iterator[None]:
    """Plan inside this block with no FFTW wisdom; the process's wisdom is back after it.

    Wisdom a timed plan left would otherwise decide an estimate plan of the same problem.
    Not safe against another thread planning at the same time (the sweeps plan on one).
    """
    import pyfftw

    saved = pyfftw.export_wisdom()
    pyfftw.forget_wisdom()
    try:
        yield
    finally:
        pyfftw.forget_wisdom()
        pyfftw.import_wisdom(saved)


class WindowFFT:
    """Four buffers ``[K, M, N]`` (``psi``, ``wave``, ``shifted``, ``spec``) and their DFTs.

    The ``*_t`` attributes are the torch tensors, the plain names numpy views of the same
    memory (with FFTW, rows ``N + ROW_PAD`` elements apart: module docstring). The transforms
    are attributes bound once (FFTW plans' ``execute`` or torch.fft calls with ``out=``),
    called without arguments: ``forward()`` ``wave = D psi``, ``inverse()`` ``psi = D^H
    wave``, ``shift()`` ``shifted = D^H spec``, ``fold()`` ``spec = D wave`` (each may
    overwrite its input). With ``subpixel=False`` only ``forward`` and ``inverse`` are planned
    (FFTW). ``kind``: ``"fftw"`` or ``"torch"``; ``planner``: FFTW's planner flag.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        dtype: torch.dtype,
        subpixel: bool,
        kind: str = "torch",
        planner: str = "FFTW_ESTIMATE",
    ) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.kind = kind
        self.planner = planner
        pad = ROW_PAD if kind == "fftw" else 0
        self.psi_t, self.wave_t, self.shifted_t, self.spec_t = (
            _buffer(self.shape, dtype, pad) for _ in range(4)
        )
        self.psi, self.wave, self.shifted, self.spec = (
            t.numpy() for t in (self.psi_t, self.wave_t, self.shifted_t, self.spec_t)
        )
        self.subpixel = subpixel
        self.forward: Callable[[], object]
        self.inverse: Callable[[], object]
        self.shift: Callable[[], object]
        self.fold: Callable[[], object]
        if self.kind == "fftw":
            self._plan_fftw(subpixel)
        else:
            self._bind_torch()

    def matches(
        self, shape: tuple[int, ...], dtype: torch.dtype, subpixel: bool, kind: str, planner: str
    ) -> bool:
        """Return True when this object serves a sweep of these shape, dtype, shifts and FFTs."""
        return (
            self.shape == tuple(shape)
            and self.dtype == dtype
            and self.kind == kind
            and self.planner == planner
            and (self.subpixel or not subpixel)
        )

    def _plan_fftw(self, subpixel: bool) -> None:
        import pyfftw

        def plan(src: np.ndarray, dst: np.ndarray, direction: str):
            return pyfftw.FFTW(
                src,
                dst,
                axes=(-2, -1),
                direction=direction,
                flags=(self.planner, "FFTW_DESTROY_INPUT"),
                threads=1,
                normalise_idft=False,
            )

        estimate = self.planner == "FFTW_ESTIMATE"
        with without_wisdom() if estimate else nullcontext():
            self.forward = plan(self.psi, self.wave, "FFTW_FORWARD").execute
            self.inverse = plan(self.wave, self.psi, "FFTW_BACKWARD").execute
            if subpixel:
                self.shift = plan(self.spec, self.shifted, "FFTW_BACKWARD").execute
                self.fold = plan(self.wave, self.spec, "FFTW_FORWARD").execute

    def _bind_torch(self) -> None:
        psi, wave, shifted, spec = self.psi_t, self.wave_t, self.shifted_t, self.spec_t
        fft2, ifft2 = torch.fft.fft2, torch.fft.ifft2
        self.forward = lambda: fft2(psi, norm="backward", out=wave)
        self.inverse = lambda: ifft2(wave, norm="forward", out=psi)
        self.shift = lambda: ifft2(spec, norm="forward", out=shifted)
        self.fold = lambda: fft2(wave, norm="backward", out=spec)


def pair_seconds(
    shape: tuple[int, int], n: int, kind: str = "torch", planner: str = "FFTW_ESTIMATE"
) -> float:
    """Return the seconds of ``n`` ``forward`` + ``n`` ``inverse`` of one ``[1, *shape]``
    complex64 ``WindowFFT`` on ``kind``: a fused sweep's FFT floor.

    The buffers hold zeros (unscaled pairs would grow the values by ``N`` each time; an FFT's
    time does not depend on the values).
    """
    import time

    w = WindowFFT((1, *shape), torch.complex64, subpixel=False, kind=kind, planner=planner)
    w.psi[...] = 0.0
    t0 = time.perf_counter()
    for _ in range(n):
        w.forward()
        w.inverse()
    return time.perf_counter() - t0
