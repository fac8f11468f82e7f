"""The 2-D DFTs of one fused PIE sweep, planned once on fixed buffers (FFTW when present).

A fused sweep (``PieEngine._sweep_fused``) transforms the same few ``[K, M, N]`` buffers at
every position, so the transforms are planned once on those buffers and only executed per
position. All four are *unscaled* DFTs over the last two axes, ``D x = sum x e^{-2 pi i k.r/N}``
and its adjoint ``D^H`` (no ``1/N``); the kernels of ``ptyframe.engines.pie_kernels`` fold the
scale factors into passes they make anyway (``modulus_delta*`` multiplies by ``1/sqrt(N)`` and
``1/N``, ``ramp_shift`` by ``1/N``), so no transform makes a pass of its own for scaling:

* ``forward``: ``wave = D psi`` (the far field, ``sqrt(N)`` times the unitary one);
* ``inverse``: ``psi = D^H wave`` (``wave`` may be overwritten);
* ``shift``: ``shifted = D^H spec`` (``spec`` already holds ``F(P) r_f / N``);
* ``fold``: ``spec = D wave`` (the probe step's spectrum, as ``torch.fft.fft2``).

With pyFFTW (``pip install pyfftw``) the plans are FFTW plans on one thread, made with the
planner effort ``planner_effort(deterministic)``:

* ``deterministic=True`` (the default of every run, ``ptyframe.config.ReconstructConfig``):
  ``FFTW_ESTIMATE``, made with FFTW's wisdom set aside (``_without_wisdom``), so the plan
  depends only on the transform's shape, strides, alignment and the CPU, never on timings or
  on what the process planned before: every process on a machine runs the same algorithm and
  gets the same bits. (FFTW plans an ``FFTW_ESTIMATE`` problem from wisdom a ``FFTW_MEASURE``
  plan of the same problem left in the process, so the effort flag alone is not enough.)
* ``deterministic=False``: ``FFTW_MEASURE``, which times candidate algorithms and keeps the
  fastest; two processes may pick different ones, whose results differ in the last bits, so
  two runs (or a run and its resume) need not agree. FFTW keeps what it learnt (its
  "wisdom") for the process, so the second plan of a shape is quick.

``benchmarks/epie_sweep.py`` times both (its ``fused`` and ``fused-measure`` rows) against
the FFT floor and PtyLab (``docs/results/epie_sweep.md``). Without pyFFTW the same transforms
run in ``torch.fft`` (unscaled norms, ``out=``), so the sweep's result is the same to float
rounding either way; torch.fft does not plan by timing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
import torch

#: The FFTW planner effort of each mode (``planner_effort``): by estimate alone, or timed.
PLANNER_EFFORT = {True: "FFTW_ESTIMATE", False: "FFTW_MEASURE"}
#: Use FFTW when pyFFTW is importable; False forces the torch.fft transforms.
USE_FFTW = True


def fftw_available() -> bool:
    """Return True when pyFFTW is importable."""
    return importlib.util.find_spec("pyfftw") is not None


def planner_effort(deterministic: bool) -> str:
    """Return the FFTW planner flag of a ``deterministic`` (or timed) plan."""
    return PLANNER_EFFORT[bool(deterministic)]


def describe(deterministic: bool, kind: str | None = None) -> str:
    """Return what a new ``WindowFFT`` runs on, for ``recon.h5``: ``"fftw FFTW_ESTIMATE"``,
    ``"fftw FFTW_MEASURE"`` or ``"torch"`` (``kind`` as for ``WindowFFT``)."""
    kind = kind or backend()
    return f"fftw {planner_effort(deterministic)}" if kind == "fftw" else kind


@contextmanager
def _without_wisdom() -> Iterator[None]:
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


def backend() -> str:
    """Return ``"fftw"`` or ``"torch"``: what a new ``WindowFFT`` will run on."""
    return "fftw" if USE_FFTW and fftw_available() else "torch"


class WindowFFT:
    """Four buffers ``[K, M, N]`` (``psi``, ``wave``, ``shifted``, ``spec``) and their DFTs.

    The ``*_t`` attributes are the torch tensors, the plain names numpy views of the same
    memory. The transforms are attributes bound once (FFTW plans' ``execute`` or torch.fft
    calls with ``out=``), called without arguments: ``forward()`` ``wave = D psi``,
    ``inverse()`` ``psi = D^H wave``, ``shift()`` ``shifted = D^H spec``, ``fold()`` ``spec
    = D wave`` (each may overwrite its input). With ``subpixel=False`` only ``forward`` and
    ``inverse`` are planned (FFTW). ``kind`` (``"fftw"`` or ``"torch"``) overrides
    ``backend()``. ``deterministic`` picks the FFTW planner (module docstring): True plans
    without timing, so every process computes the same bits.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        dtype: torch.dtype,
        subpixel: bool,
        kind: str | None = None,
        deterministic: bool = True,
    ) -> None:
        self.shape = tuple(shape)
        self.deterministic = bool(deterministic)
        self.dtype = dtype
        self.kind = kind or backend()
        self.psi_t, self.wave_t, self.shifted_t, self.spec_t = (
            torch.empty(self.shape, dtype=dtype) for _ in range(4)
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
        self, shape: tuple[int, ...], dtype: torch.dtype, subpixel: bool, deterministic: bool
    ) -> bool:
        """Return True when this object serves a sweep of ``shape``/``dtype``/``subpixel``
        with plans of the ``deterministic`` kind."""
        return (
            self.shape == tuple(shape)
            and self.dtype == dtype
            and self.kind == backend()
            and (self.subpixel or not subpixel)
            and self.deterministic == bool(deterministic)
        )

    def _plan_fftw(self, subpixel: bool) -> None:
        import pyfftw

        effort = planner_effort(self.deterministic)

        def plan(src: np.ndarray, dst: np.ndarray, direction: str):  # noqa: ANN202
            return pyfftw.FFTW(
                src,
                dst,
                axes=(-2, -1),
                direction=direction,
                flags=(effort, "FFTW_DESTROY_INPUT"),
                threads=1,
                normalise_idft=False,
            )

        with _without_wisdom() if self.deterministic else nullcontext():
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
    shape: tuple[int, int], n: int, kind: str | None = None, deterministic: bool = True
) -> float:
    """Return the seconds of ``n`` ``forward`` + ``n`` ``inverse`` of one ``[1, *shape]``
    complex64 ``WindowFFT`` on ``kind`` (default: ``backend()``) with ``deterministic``
    plans: a fused sweep's FFT floor.

    The buffers hold zeros (unscaled pairs would grow the values by ``N`` each time; an FFT's
    time does not depend on the values).
    """
    import time

    w = WindowFFT(
        (1, *shape), torch.complex64, subpixel=False, kind=kind, deterministic=deterministic
    )
    w.psi[...] = 0.0
    t0 = time.perf_counter()
    for _ in range(n):
        w.forward()
        w.inverse()
    return time.perf_counter() - t0
