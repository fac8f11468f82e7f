"""Hold the PIE family's compiled near-field sweep to the torch visit it compiles.

``ptyframe.engines.nearfield_sweep`` (numba kernels, planned DFTs) against
``visit_sweeps.sweep_visits`` (torch, the specification), and LSQML's compiled near-field
detector step against its torch visit. What each test catches:

* equal sweeps (complex128, to ~1e-10): a wrong transfer kernel or its scale, a crop or zero
  padding off by a pixel, the image-order roll of the measured row missing or the wrong
  way, ``Xi(0)``, unmeasured pixels or the mode sum handled differently, the vacuum border
  read or updated (the windows here reach past the object), the probe step not shifted back
  at sub-pixel positions, mPIE's hook seeing a stale object;
* a noiseless scan is reconstructed on the compiled path from a flat probe (a kernel that
  agrees with torch on one sweep but drifts, or a path never taken);
* a resumed run and a run in another process give the same bits (plans chosen by timing, or
  state of the sweep left out of the checkpoint).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_cold_start import corr, image_measurements, nearfield_case
from test_nearfield_engines import build

from ptyframe.data.measurements import Measurements
from ptyframe.engines.backend import fftw_available, numba_available
from ptyframe.state import ReconstructionState

pytestmark = pytest.mark.skipif(
    not numba_available(), reason="the compiled near-field sweep needs numba"
)


def case(modes: int, masked: bool, dtype: torch.dtype, buffer_px: int, shift: float):
    """Return (measurements, state) of a small near-field scan; the object and probe are
    random (not vacuum and flat, so every term of the update matters)."""
    inten, _, _, geom, _ = nearfield_case(n=3)
    meas = image_measurements(inten, geom)
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    valid = None
    if masked:  # dead pixels, and a zero-intensity pixel for Xi(0)
        valid = torch.ones(meas.amplitudes.shape, dtype=torch.bool)
        valid[:, 3, 5:9] = False
        valid[::2, 20, 20] = False
    amps = meas.amplitudes.to(real)
    amps[1, 7, 7] = 0.0
    meas = Measurements(amps, valid, meas.indices, geom)
    m = geom.window[0]
    g = torch.Generator().manual_seed(1)
    obj = torch.exp(0.3j * torch.rand(1, *geom.object_shape, generator=g, dtype=torch.float64))
    mp = m + 2 * buffer_px
    probe = torch.randn(modes, mp, mp, generator=g, dtype=torch.complex128) + math.sqrt(
        float(inten.mean())
    )
    pos = torch.from_numpy(geom.positions_px + shift)
    state = ReconstructionState(obj.to(dtype), probe.to(dtype), pos)
    return meas, state, geom


def run(
    name: str, backend: str, epochs: int, fft: str = "auto", **kw
) -> tuple[list[float], ReconstructionState]:
    """Run ``epochs`` of engine ``name`` on ``case(**kw)``; return the errors and the state."""
    b = kw["buffer_px"]
    meas, state, geom = case(**kw)
    physics = {"name": "nearfield", "buffer_px": b}
    eng = build(name, physics, epochs=epochs, backend=backend, fft=fft)
    # the state already has the buffered probe; init_state only checks shapes here
    eng.prepare(meas, state, seed=0)
    assert eng.backend.kind == backend, eng.describe()
    errs = [eng.step(e).data_error for e in range(epochs)]
    return errs, state


VARIANTS = [
    dict(modes=1, masked=False, buffer_px=6, shift=0.0),
    dict(modes=1, masked=True, buffer_px=6, shift=0.25),
    dict(modes=2, masked=True, buffer_px=6, shift=0.0),
    dict(modes=2, masked=False, buffer_px=0, shift=0.25),
]


FFTS = ["torch", "fftw"] if fftw_available() else ["torch"]


@pytest.mark.parametrize("fft", FFTS)
@pytest.mark.parametrize("name", ["epie", "rpie", "mpie"])
@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_the_compiled_nearfield_sweep_equals_the_torch_visit(name, variant, fft) -> None:
    """Two epochs (probe updated; mPIE's momentum every 4 positions, twice per epoch of 9)
    in complex128 agree to 1e-10 relative, with either FFT library."""
    kw = dict(VARIANTS[variant], dtype=torch.complex128)
    opts = {"momentum_every": 4} if name == "mpie" else {}
    out = []
    for backend in ("torch", "numba"):
        meas, state, _ = case(**kw)
        eng = build(
            name,
            {"name": "nearfield", "buffer_px": kw["buffer_px"]},
            epochs=2,
            backend=backend,
            fft=fft if backend == "numba" else "auto",
            **opts,
        )
        eng.prepare(meas, state, seed=0)
        assert eng.backend.kind == backend
        assert backend == "torch" or eng.backend.fft == fft
        errs = [eng.step(e).data_error for e in range(2)]
        out.append((errs, state))
    (e0, s0), (e1, s1) = out
    assert np.allclose(e0, e1, rtol=1e-10, atol=0), (e0, e1)
    for key in ("object", "probe"):
        a, b = getattr(s0, key), getattr(s1, key)
        scale = float(a.abs().max())
        assert float((a - b).abs().max()) < 1e-10 * scale, key


def test_a_noiseless_nearfield_scan_is_reconstructed_on_the_compiled_path() -> None:
    """As ``test_nearfield_engines``' flat-probe test, on ``backend=auto`` (numba, torch.fft):
    ePIE from a flat probe and a vacuum object, 30 epochs; the data error falls 4x and the
    phase correlates with the truth (measured in the torch test: 0.88)."""
    inten, obj, _, geom, _ = nearfield_case()
    meas = image_measurements(inten, geom)
    m = geom.window[0]
    ny, nx = geom.object_shape
    eng = build("epie", {"name": "nearfield", "buffer_px": 16}, epochs=30, backend="auto")
    flat = torch.full((1, m, m), math.sqrt(float(inten.mean())), dtype=torch.complex64)
    state = ReconstructionState(
        torch.ones(1, ny, nx, dtype=torch.complex64), flat, torch.from_numpy(geom.positions_px)
    )
    state = eng.init_state(state, SimpleNamespace(geometry=geom, n_angles=1))
    eng.prepare(meas, state, seed=0)
    assert eng.describe()["backend"] == "numba" and eng.describe()["fft"] == "torch"
    errs = [eng.step(e).data_error for e in range(30)]
    inner = (slice(m // 4, -m // 4), slice(m // 4, -m // 4))
    c = corr(-np.angle(state.object[0].numpy())[inner], -np.angle(obj)[inner])
    assert errs[-1] < 0.3 * errs[0] and c > 0.7, (errs[0], errs[-1], c)


KW = dict(modes=1, masked=True, buffer_px=6, shift=0.25, dtype=torch.complex64)


@pytest.mark.parametrize("name", ["epie", "mpie"])
def test_a_resumed_compiled_nearfield_run_repeats_the_uninterrupted_one(name) -> None:
    """Four epochs at once against two, a checkpoint, a fresh engine and two more."""
    _, whole = run(name, "numba", 4, **KW)
    meas, state, _ = case(**KW)
    first = build(name, {"name": "nearfield", "buffer_px": 6}, epochs=4, backend="numba")
    first.prepare(meas, state, seed=0)
    for e in range(2):
        first.step(e)
    saved = first.state_dict()
    again = build(name, {"name": "nearfield", "buffer_px": 6}, epochs=4, backend="numba")
    resumed = ReconstructionState(
        state.object.clone(), state.probe.clone(), state.positions_px.clone()
    )
    again.prepare(meas, resumed, seed=0)
    again.load_state_dict(saved)
    for e in range(2, 4):
        again.step(e)
    assert torch.equal(resumed.object, whole.object) and torch.equal(resumed.probe, whole.probe)


def digest(fft: str) -> str:
    """Return the hex digest of object and probe after 3 compiled rPIE epochs (this process)."""
    import hashlib

    _, state = run("rpie", "numba", 3, fft=fft, **KW)
    h = hashlib.sha256(state.object.numpy().tobytes())
    h.update(state.probe.numpy().tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("fft", FFTS)
def test_two_processes_give_the_same_bits(fft) -> None:
    """The compiled near-field sweep in this process and in a fresh one: equal digests
    (with FFTW: plans by estimate without wisdom)."""
    here = Path(__file__).parent
    path = os.pathsep.join([str(here), str(here.parent / "_support")])
    code = f"import test_nearfield_fused as t; print(t.digest({fft!r}))"
    env = {**os.environ, "PYTHONPATH": path}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=here, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == digest(fft)


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_lsqml_compiled_nearfield_step_equals_the_torch_visit(variant) -> None:
    """LSQML's group step on the numba backend (``near_delta`` on the propagated batch)
    equals the torch visit's over two epochs in complex128 (the epoch momentum included);
    catches the same crop, roll, mask and ``Xi(0)`` faults as the PIE test, in the batched
    path."""
    kw = dict(VARIANTS[variant], dtype=torch.complex128)
    out = []
    for backend in ("torch", "numba"):
        meas, state, _ = case(**kw)
        eng = build(
            "lsqml",
            {"name": "nearfield", "buffer_px": kw["buffer_px"]},
            epochs=2,
            backend=backend,
            batch_size=4,
        )
        eng.prepare(meas, state, seed=0)
        assert eng.backend.kind == backend
        errs = [eng.step(e).data_error for e in range(2)]
        out.append((errs, state))
    (e0, s0), (e1, s1) = out
    assert np.allclose(e0, e1, rtol=1e-10, atol=0), (e0, e1)
    for key in ("object", "probe"):
        a, b = getattr(s0, key), getattr(s1, key)
        assert float((a - b).abs().max()) < 1e-10 * float(a.abs().max()), key
