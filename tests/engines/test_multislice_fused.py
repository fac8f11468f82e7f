"""Hold the PIE family's compiled multislice sweep to the torch visit it compiles.

``ptyframe.engines.multislice_sweep`` (numba kernels, planned DFTs; the e3PIE chain) against
``visit_sweeps.sweep_visits`` (torch, the specification). What each test catches:

* equal sweeps (complex128, to 1e-10): a slice's window read at the wrong corner or slice, a
  gap's transfer kernel missing, conjugated the wrong way or mis-scaled, the incident wave
  of a slice not kept (or overwritten) before the chain back, a slice's step taken with the
  wrong maxima or the wrong rule (the probe-step flag of the slices after the first, mPIE's
  step sizes), the chain carrying the object step instead of the incident step back, the
  probe step not shifted back at sub-pixel positions, the near-field detector's crop, roll,
  masks and ``Xi(0)`` after several slices, the vacuum border read or updated (the
  near-field windows here reach past the object), mPIE's hook seeing one slice only;
* two slices a gap apart are separated from vacuum on the compiled path that ``backend=auto``
  picks (a chain that agrees with torch on two epochs but drifts, or a path never taken),
  in the far field and, for ePIE and LSQML, in the near field (Fresnel detector with a
  buffer zone: a detector distance, buffer or crop that the slices' chain gets wrong, or a
  gap applied on the wrong side of the detector, mixes the slices or leaves the error high);
* a resumed mPIE run repeats the uninterrupted one bit for bit (the momentum buffers of
  every slice in the checkpoint); two processes of the command line write the same bits
  and ``recon.h5`` records the compiled backend.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from test_cold_start import (
    DX,
    E_EV,
    blobs,
    corr,
    fresnel_np,
    image_measurements,
    nearfield_case,
    raster,
    smooth,
    wavelength_m,
)
from test_nearfield_engines import build, multislice_case, multislice_run

from ptyframe.data.geometry import ScanGeometry
from ptyframe.data.measurements import Measurements
from ptyframe.engines.backend import fftw_available, numba_available
from ptyframe.state import ReconstructionState

pytestmark = pytest.mark.skipif(
    not numba_available(), reason="the compiled multislice sweep needs numba"
)


def case(near: bool, slices: int, modes: int, masked: bool, shift: float, dtype: torch.dtype):
    """Return (measurements, state, physics) of a small multislice scan.

    Far field: ``test_nearfield_engines.multislice_case`` (36 positions of 32 px). Near field
    (Fresnel detector, buffer 6 px): ``nearfield_case(n=3)``'s 9 holograms. The slices and the
    probe are random (not vacuum and the known probe, so every term of the chain matters).
    """
    if near:
        inten, _, _, geom, _ = nearfield_case(n=3)
        meas = image_measurements(inten, geom)
        b = 6
        physics = {
            "name": "multislice",
            "n_slices": slices,
            "slice_spacing_m": 3e-6,
            "detector": "fresnel",
            "buffer_px": b,
        }
    else:
        meas, geom, _, _, dz = multislice_case()
        b = 0
        physics = {"name": "multislice", "n_slices": slices, "slice_spacing_m": dz}
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    valid = None
    if masked:  # dead pixels, and a zero-intensity pixel for Xi(0)
        valid = torch.ones(meas.amplitudes.shape, dtype=torch.bool)
        valid[:, 3, 5:9] = False
        valid[::2, 20, 20] = False
    amps = meas.amplitudes.to(real).clone()
    amps[1, 7, 7] = 0.0
    meas = Measurements(amps, valid, meas.indices, geom)
    m = geom.window[0]
    g = torch.Generator().manual_seed(1)
    phase = torch.rand(slices, *geom.object_shape, generator=g, dtype=torch.float64)
    obj = torch.exp(0.3j * phase)
    mp = m + 2 * b
    probe = torch.randn(modes, mp, mp, generator=g, dtype=torch.complex128)
    probe += math.sqrt(float(amps.square().mean()))
    pos = torch.from_numpy(geom.positions_px + shift)
    state = ReconstructionState(obj.to(dtype), probe.to(dtype), pos)
    return meas, state, physics


VARIANTS = [
    dict(near=False, slices=2, modes=1, masked=False, shift=0.0),
    dict(near=False, slices=2, modes=1, masked=True, shift=0.25, fix_probe=True),
    dict(near=False, slices=3, modes=2, masked=True, shift=0.25),
    dict(near=True, slices=2, modes=1, masked=True, shift=0.25),
    dict(near=True, slices=3, modes=2, masked=False, shift=0.0),
]
FFTS = ["torch", "fftw"] if fftw_available() else ["torch"]


def two_epochs(name: str, backend: str, fft: str, kw: dict) -> tuple[list[float], object]:
    """Run two epochs of ``name`` (the probe updated unless ``kw`` fixes it; mPIE's momentum
    every 4 positions)."""
    kw = dict(kw)
    fix = bool(kw.pop("fix_probe", False))
    meas, state, physics = case(**kw, dtype=torch.complex128)
    opts = {"momentum_every": 4} if name == "mpie" else {}
    eng = build(name, physics, epochs=2, backend=backend, fft=fft, fix_probe=fix, **opts)
    eng.prepare(meas, state, seed=0)
    assert eng.backend.kind == backend
    assert backend == "torch" or eng.backend.fft == fft
    return [eng.step(e).data_error for e in range(2)], state


@pytest.mark.parametrize("fft", FFTS)
@pytest.mark.parametrize("name", ["epie", "rpie", "mpie"])
@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_the_compiled_multislice_sweep_equals_the_torch_visit(name, variant, fft) -> None:
    """Two epochs in complex128 agree to 1e-10 relative (errors, every slice, the probe),
    and the probe moved (its step is compared, not skipped) unless it is fixed (then the
    slices after the first still carry their incident steps back)."""
    kw = VARIANTS[variant]
    e0, s0 = two_epochs(name, "torch", "auto", kw)
    e1, s1 = two_epochs(name, "numba", fft, kw)
    kw = {k: v for k, v in kw.items() if k != "fix_probe"}
    _, start, _ = case(**kw, dtype=torch.complex128)
    assert np.allclose(e0, e1, rtol=1e-10, atol=0), (e0, e1)
    for key in ("object", "probe"):
        a, b = getattr(s0, key), getattr(s1, key)
        scale = float(a.abs().max())
        assert float((a - b).abs().max()) < 1e-10 * scale, key
        moved = float((a - getattr(start, key)).abs().max()) > 1e-3 * scale
        assert moved or (key == "probe" and VARIANTS[variant].get("fix_probe")), key


@pytest.mark.parametrize("name", ["epie", "rpie"])
def test_two_slices_are_separated_on_the_compiled_path(name) -> None:
    """``test_nearfield_engines``' two-slice case (36 positions, known probe, 40 epochs from
    vacuum) on ``backend=auto``, which runs the compiled sweep with FFTW (when installed):
    each slice correlates with its own film above 0.8 and with the other below 0.3
    (measured on this path: 0.88 / 0.95 ePIE, 0.96 / 0.99 rPIE, cross below 0.06, as on the
    torch visit)."""
    meas, geom, probe, _, dz = multislice_case()
    physics = {"name": "multislice", "n_slices": 2, "slice_spacing_m": dz}
    eng = build(name, physics, epochs=1, fix_probe=True, backend="auto")
    state = ReconstructionState(
        torch.ones(1, *geom.object_shape, dtype=torch.complex64),
        torch.from_numpy(probe[None]).to(torch.complex64),
        torch.from_numpy(geom.positions_px.copy()),
    )
    state = eng.init_state(state, SimpleNamespace(geometry=geom, n_angles=1))
    eng.prepare(meas, state, seed=0)
    described = eng.describe()
    assert described["backend"] == "numba" and described["slices"] == "2", described
    assert described["fft"] == ("fftw" if fftw_available() else "torch"), described
    _, c = multislice_run(name, 2, 40)
    assert c[0][0] > 0.8 and c[1][1] > 0.8, c
    assert abs(c[0][1]) < 0.3 and abs(c[1][0]) < 0.3, c


def nearfield_multislice_case(buffer_px: int = 16):
    """Return (measurements, geometry, probe ``[M+2b, M+2b]``, true phases, gap) of two films.

    Near field at Fresnel number 32 (``nearfield_case``'s distance), 16 positions of 48 px,
    two films of Gaussian dots (phase up to 0.6 rad) 40 depths of field ``dx^2 / lambda``
    apart under a speckled illumination, simulated in numpy on the model's own window (the
    frame and ``buffer_px`` on every side, periodic there), the detector keeping the central
    ``M x M``. On that window the model with the true films predicts the data exactly: a
    margin larger than the model's buffer would add the illumination's wrap-around, which
    the slices then absorb (``test_cold_start`` holds the buffer to the wrap-around).
    """
    m, b = 48, buffer_px
    lam = wavelength_m()
    d = (m * DX) ** 2 / (lam * 32)
    dz = 40 * DX**2 / lam
    pos = raster(4, m // 4, 1)
    size = int(pos.max()) + m
    f = [blobs(size, size, s, size * size // 86, 1.2) for s in (1, 2)]
    films = []
    for fi in f:
        phase = np.zeros((size + 2 * b, size + 2 * b))
        phase[b : b + size, b : b + size] = fi  # vacuum around the object frame
        films.append(np.exp(-0.6j * phase))
    big = m + 2 * b
    probe = (0.6 + 0.4 * smooth(big, big, 3, 0.1)) * np.exp(2j * np.pi * smooth(big, big, 4, 0.08))
    probe *= math.sqrt(1e6 / m**2)
    w1, w2 = (np.stack([o[y : y + big, x : x + big] for y, x in pos.astype(int)]) for o in films)
    psi = fresnel_np(w1 * probe, dz, DX, lam) * w2
    inten = np.abs(fresnel_np(psi, d, DX, lam)[:, b : b + m, b : b + m]) ** 2
    geom = ScanGeometry(pos, (m, m), (size, size), E_EV, DX, (d,))
    return image_measurements(inten, geom), geom, probe, f, dz


@pytest.mark.parametrize("name", ["epie", "lsqml"])
def test_two_slices_are_separated_in_the_near_field_on_the_compiled_path(name) -> None:
    """``nearfield_multislice_case`` (``detector=fresnel``, buffer 16 px) from vacuum with
    the known probe, 30 epochs on ``backend=auto`` (the compiled sweep, LSQML's fused group
    update): each slice's phase correlates with its own film above 0.85 and with the other
    below 0.25, and the data error falls below 0.3 of the first epoch's. The case is
    simulated on the model's own window: with a wider simulation margin than the buffer,
    the probe's wrap-around in the model leaves a misfit that the slices absorb (see the
    near-field guide on the buffer). Seen failing with the gap's conjugate kernel or the
    near-field adjoint replaced by the forward kernel in the compiled sweep, and with
    LSQML's chain back propagating forward."""
    meas, geom, probe, f, dz = nearfield_multislice_case(16)
    physics = {
        "name": "multislice",
        "n_slices": 2,
        "slice_spacing_m": dz,
        "detector": "fresnel",
        "buffer_px": 16,
    }
    eng = build(name, physics, epochs=30, fix_probe=True, backend="auto")
    state = ReconstructionState(
        torch.ones(1, *geom.object_shape, dtype=torch.complex64),
        torch.from_numpy(probe[None]).to(torch.complex64),
        torch.from_numpy(geom.positions_px.copy()),
    )
    state = eng.init_state(state, SimpleNamespace(geometry=geom, n_angles=1))
    eng.prepare(meas, state, seed=0)
    described = eng.describe()
    assert described["backend"] == "numba" and described["slices"] == "2", described
    assert described["propagator"] == "nearfield", described
    errs = [eng.step(e).data_error for e in range(30)]
    m = geom.window[0]
    inner = (slice(m // 4, -m // 4), slice(m // 4, -m // 4))
    ph = [-np.angle(state.object[i].numpy())[inner] for i in range(2)]
    c = [[corr(ph[i], f[j][inner]) for j in range(2)] for i in range(2)]
    assert c[0][0] > 0.85 and c[1][1] > 0.85, c
    assert abs(c[0][1]) < 0.25 and abs(c[1][0]) < 0.25, c
    assert errs[-1] < 0.3 * errs[0], (errs[0], errs[-1])


def test_a_resumed_compiled_multislice_run_repeats_the_uninterrupted_one() -> None:
    """mPIE (momentum every 4 positions) in complex64: four epochs at once against two, a
    checkpoint, a fresh engine and two more; equal bits."""
    kw = dict(near=False, slices=2, modes=1, masked=False, shift=0.25, dtype=torch.complex64)

    def engine(state_from=None):
        meas, state, physics = case(**kw)
        if state_from is not None:
            state = ReconstructionState(
                state_from.object.clone(), state_from.probe.clone(), state.positions_px
            )
        eng = build("mpie", physics, epochs=4, backend="numba", momentum_every=4)
        eng.prepare(meas, state, seed=0)
        return eng, state

    whole, s_whole = engine()
    for e in range(4):
        whole.step(e)
    first, s_first = engine()
    for e in range(2):
        first.step(e)
    saved = first.state_dict()
    again, s_again = engine(s_first)
    again.load_state_dict(saved)
    for e in range(2, 4):
        again.step(e)
    assert torch.equal(s_again.object, s_whole.object)
    assert torch.equal(s_again.probe, s_whole.probe)


def test_two_command_line_runs_write_the_same_bits_from_the_compiled_sweep(tmp_path) -> None:
    """``ptyframe reconstruct +imaging=multislice engine=epie`` on the simulated film, twice
    in fresh processes: ``recon.h5`` says ``engine_backend = numba`` (``backend=auto``) with
    two slices, and object, probe and errors have the same bits."""
    import ptyframe

    data = ptyframe.simulate_case("multislice_film")
    path = tmp_path / "ms.h5"
    data.write(path)
    outs = [tmp_path / "a", tmp_path / "b"]
    procs = []
    for out in outs:
        cmd = [
            sys.executable, "-m", "ptyframe.cli", "reconstruct", "+imaging=multislice",
            f"data.path={path}", f"physics.slice_spacing_m={data.attrs['slice_gap_m']}",
            "init.probe=truth", "engine=epie", "engine.fix_probe=true", "engine.epochs=3",
            "metrics.every=0", "output.images=false", "progress=false", f"output.dir={out}",
        ]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    a, b = (Path(out) / "recon.h5" for out in outs)
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert fa.attrs["engine_backend"] == "numba" and fa.attrs["engine_slices"] == "2"
        for key in ("object", "probe", "history/data_error"):
            assert fa[key][()].tobytes() == fb[key][()].tobytes(), key
