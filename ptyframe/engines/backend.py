"""Choose how a fast engine's sweep runs: the one place a backend is chosen.

Two config fields of every fast engine (``ptyframe.engines.config.FastEngineConfig``) say it:

``engine.backend``
    ``torch``: the sweep's maths in torch, on any device (the specification);
    ``numba``: the fused CPU kernels of ``ptyframe.engines.kernels``, which take their
    coefficients from the torch rules (``ptyframe.engines.rules``) and are tested equal to
    them; ``auto``: numba where it can run (numba importable, the unknowns on the CPU, the
    engine's numba path covering the run's propagator), else torch.
``engine.fft``
    the transforms of the numba sweep: ``fftw`` (pyFFTW's plans on fixed buffers), ``torch``
    (``torch.fft``) or ``auto`` (fftw when pyFFTW is importable; torch for the near-field
    sweep, ``resolve``'s ``auto_fftw``). The torch backend always transforms with
    ``torch.fft``.

Determinism: FFTW plans are made with ``FFTW_ESTIMATE``, which chooses the algorithm from the
transform's shape alone, so two processes run the same arithmetic. Planning by timing
(``FFTW_MEASURE``) can pick different algorithms in two processes, whose last bits differ;
it is used only when the run opts out of determinism. What was resolved is recorded in
``recon.h5`` (``Engine.describe``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from ptyframe.errors import ConfigError

BACKENDS = ("auto", "torch", "numba")
FFTS = ("auto", "torch", "fftw")


def numba_available() -> bool:
    """Return True when numba is importable (the fused kernels can be compiled)."""
    return importlib.util.find_spec("numba") is not None


def fftw_available() -> bool:
    """Return True when pyFFTW is importable."""
    return importlib.util.find_spec("pyfftw") is not None


@dataclass(frozen=True)
class Backend:
    """A resolved backend: ``kind`` (torch or numba), ``fft`` (torch or fftw), ``planner``."""

    kind: str = "torch"
    fft: str = "torch"
    #: FFTW's planner flag (``FFTW_ESTIMATE`` unless the run opted out of determinism).
    planner: str = "FFTW_ESTIMATE"

    @property
    def fused(self) -> bool:
        """Whether the sweep runs the fused numba kernels."""
        return self.kind == "numba"

    def describe(self) -> dict[str, str]:
        """Return the backend as ``recon.h5`` attributes."""
        out = {"backend": self.kind, "fft": self.fft}
        if self.fft == "fftw":
            out["fft_planner"] = self.planner
        return out


def check_choice(owner: str, backend: str, fft: str) -> None:
    """Raise ``ConfigError`` for a backend or FFT name that does not exist."""
    if backend not in BACKENDS:
        raise ConfigError(f"{owner}.backend = {backend!r}; choose one of {', '.join(BACKENDS)}")
    if fft not in FFTS:
        raise ConfigError(f"{owner}.fft = {fft!r}; choose one of {', '.join(FFTS)}")


def resolve(
    owner: str,
    backend: str,
    fft: str,
    device: torch.device | str,
    numba_ok: bool = True,
    fftw_ok: bool = True,
    deterministic: bool = True,
    auto_fftw: bool = True,
) -> Backend:
    """Return the backend a sweep runs on (module docstring).

    ``numba_ok``: the engine's numba path covers this run (e.g. not for a propagator it has
    no kernels for); ``fftw_ok``: its numba path transforms with FFTW plans (the batched
    engines transform with ``torch.fft`` on either backend); ``auto_fftw``: ``fft=auto``
    picks FFTW where it can run (False: ``torch.fft``, the near-field sweep's choice, whose
    buffered windows are rarely sizes FFTW's estimated plans transform fast;
    ``benchmarks/nearfield.py`` times both). An explicit choice that cannot run is a
    ``ConfigError`` with the reason.
    """
    check_choice(owner, backend, fft)
    on_cpu = torch.device(device).type == "cpu"
    can = numba_available() and on_cpu and numba_ok
    if backend == "numba" and not can:
        why = (
            "numba is not installed"
            if not numba_available()
            else "the unknowns are not on the CPU"
            if not on_cpu
            else "its numba path does not cover this run"
        )
        raise ConfigError(f"{owner}.backend = numba cannot run: {why}; use backend=auto")
    kind = "numba" if backend == "numba" or (backend == "auto" and can) else "torch"
    if fft == "fftw":
        if not fftw_available():
            raise ConfigError(
                f"{owner}.fft = fftw but pyFFTW is not installed: pip install 'ptyframe[fftw]', "
                "or use fft=auto"
            )
        if kind != "numba" or not fftw_ok:
            why = "the torch backend" if kind != "numba" else f"{owner}'s sweep"
            raise ConfigError(
                f"{owner}.fft = fftw cannot run: {why} transforms with torch.fft; use fft=auto"
            )
    wanted = fft == "fftw" or (fft == "auto" and auto_fftw)
    use_fftw = kind == "numba" and fftw_ok and wanted and fftw_available()
    chosen = "fftw" if use_fftw else "torch"
    planner = "FFTW_ESTIMATE" if deterministic else "FFTW_MEASURE"
    return Backend(kind, chosen, planner)
