"""Hold LSQML's fused group update (numba backend) to the torch visit it compiles.

``ptyframe.engines.lsqml_fused`` against ``visit_sweeps.lsqml_visits`` (the specification)
in complex128 over two epochs (probe updated, epoch momentum on), on random objects and
probes so that every term matters: near field with a buffer zone (windows reaching past
the object), one and two modes, integer and sub-pixel positions, masked pixels; two
slices in the far field and in the near field; the Poisson exit-wave update. What each
catches:

* a direction formed from the wrong incident wave or slice, a conjugate missing, a mode
  sum or scatter off by a window, the probe weight or numerator wrong;
* a direction's exit-wave change not carried through the later slices (or carried through
  the wrong kernel), the chain back skipping a slice;
* a Gram entry or its mirror wrong, the step solve reading the matrix differently;
* the vacuum border read or written, the probe direction not shifted back (or forth) at
  sub-pixel positions.

And ``backend=auto`` runs the fused update for slices too (the route is taken at all).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_cold_start import DX, image_measurements, nearfield_case, wavelength_m
from test_nearfield_engines import build, multislice_case

from ptyframe.data.measurements import Measurements
from ptyframe.engines import lsqml_kernels
from ptyframe.engines.backend import numba_available
from ptyframe.engines.visit_sweeps import joint_steps, steps_from_gram
from ptyframe.state import ReconstructionState

pytestmark = pytest.mark.skipif(not numba_available(), reason="the fused update needs numba")


def random_state(
    slices: int, shape: tuple[int, int], modes: int, window: int, scale: float, pos, shift: float
) -> ReconstructionState:
    """A random object (``slices`` phase screens near 1) and random probe modes."""
    g = torch.Generator().manual_seed(3)
    phase = 0.3 * torch.rand(slices, *shape, generator=g, dtype=torch.float64)
    obj = torch.exp(1j * phase) * (1 - 0.1 * torch.rand(slices, *shape, generator=g))
    probe = torch.randn(modes, window, window, generator=g, dtype=torch.complex128) + scale
    return ReconstructionState(obj, probe, torch.from_numpy(np.asarray(pos) + shift))


def nearfield_problem(modes: int, shift: float, masked: bool, slices: int):
    """(measurements, state, physics) of the small near-field case, buffer 6 px."""
    inten, _, _, geom, _ = nearfield_case(n=3)
    meas = image_measurements(inten, geom)
    amps = meas.amplitudes.to(torch.float64)
    valid = None
    if masked:
        valid = torch.ones(amps.shape, dtype=torch.bool)
        valid[:, 3, 5:9] = False
        amps[1, 7, 7] = 0.0
    meas = Measurements(amps, valid, meas.indices, geom)
    b = 6
    physics: dict = {"name": "nearfield", "buffer_px": b}
    if slices > 1:
        dz = 20 * DX**2 / wavelength_m()
        physics = {"name": "multislice", "n_slices": slices, "slice_spacing_m": dz}
        physics.update(detector="fresnel", buffer_px=b)
    scale = math.sqrt(float(inten.mean()))
    state = random_state(
        slices, geom.object_shape, modes, geom.window[0] + 2 * b, scale, geom.positions_px, shift
    )
    return meas, state, physics


def multislice_problem(modes: int, shift: float):
    """(measurements, state, physics) of two films in the far field (32 px windows)."""
    meas, geom, probe, _, dz = multislice_case()
    meas = Measurements(meas.amplitudes.to(torch.float64), None, meas.indices, geom)
    physics = {"name": "multislice", "n_slices": 2, "slice_spacing_m": dz}
    scale = float(np.abs(probe).max())
    state = random_state(
        2, geom.object_shape, modes, geom.window[0], scale, geom.positions_px, shift
    )
    return meas, state, physics


def two_epochs(problem, backend: str, **options) -> tuple[list[float], ReconstructionState]:
    meas, state, physics = problem
    eng = build("lsqml", physics, epochs=2, backend=backend, batch_size=4, **options)
    eng.prepare(meas, state, seed=0)
    assert eng.backend.kind == ("numba" if backend == "auto" else "torch"), eng.describe()
    return [eng.step(e).data_error for e in range(2)], state


CASES = {
    "near 1 mode": lambda: nearfield_problem(1, 0.0, False, 1),
    "near 1 mode shifted masked": lambda: nearfield_problem(1, 0.25, True, 1),
    "near 2 modes shifted": lambda: nearfield_problem(2, 0.25, False, 1),
    "near 2 slices shifted": lambda: nearfield_problem(1, 0.25, True, 2),
    "far 2 slices": lambda: multislice_problem(1, 0.0),
    "far 2 slices 2 modes shifted": lambda: multislice_problem(2, 0.25),
}


@pytest.mark.parametrize("likelihood", ["gaussian", "poisson"])
@pytest.mark.parametrize("name", list(CASES))
def test_the_fused_group_update_equals_the_torch_visit(name, likelihood) -> None:
    """Errors, object slices and probe after two epochs agree to 1e-10 (complex128)."""
    if likelihood == "poisson" and not name.startswith(("near 2 modes", "far 2 slices 2")):
        pytest.skip("the Poisson step is the shared torch one: two cases suffice")
    (e0, s0), (e1, s1) = (
        two_epochs(CASES[name](), backend, likelihood=likelihood) for backend in ("torch", "auto")
    )
    assert np.allclose(e0, e1, rtol=1e-10, atol=0), (e0, e1)
    for key in ("object", "probe"):
        a, b = getattr(s0, key), getattr(s1, key)
        assert float((a - b).abs().max()) < 1e-10 * float(a.abs().max()), key
    start = CASES[name]()[1]
    assert float((s1.object - start.object).abs().max()) > 1e-3  # updated, not both idle


def test_the_gram_kernel_equals_the_step_solve_product() -> None:
    """``gram`` gives ``joint_steps``' matrix: the same steps from random changes (catches
    a wrong mirror or a residual entry taken from the wrong row)."""
    g = torch.Generator().manual_seed(0)
    shape = (3, 5, 2, 7, 9)
    eff = torch.randn(shape, generator=g, dtype=torch.complex128)
    chi = torch.randn(shape[1:], generator=g, dtype=torch.complex128)
    out = np.empty((5, 4, 4))
    lsqml_kernels.kernels().gram(eff.numpy(), chi.numpy(), out)
    rows = torch.view_as_real(torch.cat([eff, chi[None]])).reshape(4, 5, -1).transpose(0, 1)
    want = torch.bmm(rows, rows.transpose(1, 2))
    want[:, 3, 3] = 0.0
    assert torch.allclose(torch.from_numpy(out), want, rtol=1e-12, atol=1e-9)
    assert np.allclose(
        steps_from_gram(torch.from_numpy(out), 1e-6), joint_steps(chi, list(eff), 1e-6)
    )


def test_backend_auto_runs_the_fused_update_for_slices() -> None:
    """With two slices ``backend=auto`` resolves to numba for LSQML (its fused group
    update), so a run with slices takes the fused path by default."""
    meas, state, physics = multislice_problem(1, 0.0)
    eng = build("lsqml", physics, epochs=1, backend="auto")
    eng.prepare(meas, state, seed=0)
    assert eng.backend.kind == "numba"
