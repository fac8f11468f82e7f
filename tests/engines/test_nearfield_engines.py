"""Hold the fast engines' near-field and multislice visits to the physics.

The engines come from the registry: every fast engine that declares the near-field
propagator (``Capabilities.propagators``) or slices (``Capabilities.slices``). What each
test catches:

* the visit pipeline's forward (slices, Fresnel propagation, buffer crop) and its adjoint
  (the chain back) are adjoint: a wrong conjugate, kernel, crop or roll breaks the identity;
* through the far field with one slice the general visit gives the engines' own sweeps (a
  rule applied differently in the general path, a missing probe step);
* from a flat probe and a vacuum object, a noiseless near-field scan simulated in numpy on a
  window far larger than the detector (no wrap-around) is reconstructed: the data error
  falls by a large factor and the object's phase correlates with the truth (a broken
  propagator, buffer or detector order leaves the error high and the phase uncorrelated);
* two slices a gap apart are recovered, each correlating with its own true slice and not
  with the other, and fit the data better than one slice does (a chain that does not carry
  the step back, or the wrong gap, mixes the slices or leaves the error of one slice).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

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
    measurements,
    nearfield_case,
    raster,
    wavelength_m,
    windows,
)

from ptyframe.compose import build_engine
from ptyframe.data.geometry import ScanGeometry
from ptyframe.engines.frame import FastEngine
from ptyframe.engines.sequential import SweepPlan, sweep_torch
from ptyframe.engines.visit import VisitModel, far_field_visits
from ptyframe.engines.visit_sweeps import sweep_visits
from ptyframe.errors import ConfigError
from ptyframe.physics.detector import NearFieldPropagator
from ptyframe.physics.exitwave import MultisliceExitWave, gradient_rule
from ptyframe.registry import BuildContext
from ptyframe.state import ReconstructionState

from registered import ENGINES, REGISTRY


def fast(capability: str) -> list[str]:
    """Return the registered fast engines declaring near field (``nearfield``) or slices."""
    out = []
    for name in ENGINES:
        cls = REGISTRY.get("engine", name).factory
        if not (isinstance(cls, type) and issubclass(cls, FastEngine)):
            continue
        caps = cls.capabilities
        if (capability == "nearfield" and "nearfield" in caps.propagators) or (
            capability == "slices" and caps.slices
        ):
            out.append(name)
    return out


NEAR = fast("nearfield")
SLICES = fast("slices")


def build(name: str, physics: dict, **options) -> FastEngine:
    """Build engine ``name`` with ``physics`` as a run would (``compose.build_engine``)."""
    cfg = SimpleNamespace(engine={"name": name, **options}, physics=physics)
    eng = build_engine(cfg, REGISTRY, BuildContext(REGISTRY))
    assert isinstance(eng, FastEngine)
    return eng


def inner_product(a: torch.Tensor, b: torch.Tensor) -> complex:
    return complex((a.conj() * b).sum())


def test_the_visit_pipeline_and_its_chain_back_are_adjoint() -> None:
    """<A u, d> = <u, A^H d> for A: probe -> detector through 2 slices and the near field."""
    torch.manual_seed(0)
    m, b, k, nb = 24, 6, 2, 3
    mp = m + 2 * b
    lam = wavelength_m()
    dist = (m * DX) ** 2 / (lam * 8)
    prop = NearFieldPropagator((m, m), DX, lam, dist, b, dtype=torch.complex128)
    chain = MultisliceExitWave(2, (mp, mp), DX, lam, 40 * DX**2 / lam, dtype=torch.complex128)
    win = torch.randn(2, nb, mp, mp, dtype=torch.complex128)
    u = torch.randn(nb, k, mp, mp, dtype=torch.complex128)
    d = torch.randn(nb, k, m, m, dtype=torch.complex128)
    psi, cache = chain.forward(win, u)
    back = chain.backward(prop.adjoint(d), cache, gradient_rule)
    lhs = inner_product(prop.forward(psi), d)
    rhs = inner_product(u, back.probe_step)
    assert abs(lhs - rhs) < 1e-10 * abs(lhs), (lhs, rhs)
    # linear in the last slice's windows as well: dO = sum_k conj(u_k) chi_k
    lhs2 = inner_product(prop.forward(psi), d)
    rhs2 = inner_product(win[1], back.window_steps[1])
    assert abs(lhs2 - rhs2) < 1e-10 * abs(lhs2), (lhs2, rhs2)


@pytest.fixture(scope="module")
def farfield_case():
    """A small noiseless far-field scan, complex128 state."""
    from ptyframe.data.measurements import Measurements

    from synth import make_dataset

    ds = make_dataset(m=32, n=5, step=6.0, jitter=0.8)
    return ds, Measurements.from_dataset(ds)


@pytest.mark.parametrize("rpie", [False, True])
def test_the_general_visit_through_the_far_field_is_the_pie_sweep(farfield_case, rpie) -> None:
    """sweep_visits(far field, 1 slice) == sequential.sweep_torch (complex128, sub-pixel)."""
    from ptyframe.engines.rules import PieRule
    from ptyframe.engines.scan import ScanWindows
    from ptyframe.initial import InitConfig, initial_state

    ds, meas = farfield_case
    base = initial_state(InitConfig(), ds, meas, dtype="complex128")
    rule = PieRule(rpie, 0.5 if rpie else 0.25, 2.0 if rpie else 0.25)
    order = np.random.default_rng(0).permutation(meas.n).tolist()
    out = []
    for general in (False, True):
        state = ReconstructionState(
            base.object.clone(), base.probe.clone(), base.positions_px.clone()
        )
        scan = ScanWindows(state.positions_px, state.window, state.object.shape[-2:])
        plan = SweepPlan(order, rule)
        if general:
            err = sweep_visits(state, meas, scan, plan, far_field_visits(state.window))
        else:
            err = sweep_torch(state, meas, scan, plan)
        out.append((err, state.object.clone(), state.probe.clone()))
    (e0, o0, p0), (e1, o1, p1) = out
    assert abs(e0 - e1) < 1e-9 * e0
    assert torch.allclose(o0, o1, rtol=0, atol=1e-10)
    assert torch.allclose(p0, p1, rtol=0, atol=1e-8 * float(p0.abs().max()))


def test_the_general_lsqml_group_through_the_far_field_is_lsqml(farfield_case) -> None:
    """lsqml_visits(far field, 1 slice) == LsqmlEngine.update_batch (complex128)."""
    from ptyframe.initial import InitConfig, initial_state

    ds, meas = farfield_case
    base = initial_state(InitConfig(), ds, meas, dtype="complex128")
    out = []
    for general in (False, True):
        eng = build("lsqml", "farfield", epochs=2, backend="torch")
        state = ReconstructionState(
            base.object.clone(), base.probe.clone(), base.positions_px.clone()
        )
        eng.prepare(meas, state, seed=0)
        if general:  # the plain model, but routed through the general visit
            plain = far_field_visits(state.window)
            eng.visit = VisitModel(plain.exit_wave, plain.propagator, general=True)
        errs = [eng.step(e).data_error for e in range(2)]
        out.append((errs, state.object.clone(), state.probe.clone()))
    (e0, o0, p0), (e1, o1, p1) = out
    assert np.allclose(e0, e1, rtol=1e-9)
    assert torch.allclose(o0, o1, rtol=0, atol=1e-9)
    assert torch.allclose(p0, p1, rtol=0, atol=1e-9 * float(p0.abs().max()))


# ---------------------------------------------------------------------- near field
def nearfield_run(name: str, epochs: int) -> tuple[float, float, float]:
    """Return (first, last data error, phase correlation) from a flat probe, vacuum object."""
    inten, obj, _, geom, _ = nearfield_case()
    meas = image_measurements(inten, geom)
    m = geom.window[0]
    ny, nx = geom.object_shape
    eng = build(name, {"name": "nearfield", "buffer_px": 16}, epochs=epochs, backend="torch")
    flat = torch.full((1, m, m), math.sqrt(float(inten.mean())), dtype=torch.complex64)
    state = ReconstructionState(
        torch.ones(1, ny, nx, dtype=torch.complex64), flat, torch.from_numpy(geom.positions_px)
    )
    state = eng.init_state(state, SimpleNamespace(geometry=geom, n_angles=1))
    assert state.window == (m + 32, m + 32)
    eng.prepare(meas, state, seed=0)
    assert eng.backend.kind == "torch" and eng.describe()["propagator"] == "nearfield"
    errs = [eng.step(e).data_error for e in range(epochs)]
    inner = (slice(m // 4, -m // 4), slice(m // 4, -m // 4))
    c = corr(-np.angle(state.object[0].numpy())[inner], -np.angle(obj)[inner])
    return errs[0], errs[-1], c


@pytest.mark.parametrize("name", NEAR)
def test_a_noiseless_nearfield_scan_is_reconstructed_from_a_flat_probe(name) -> None:
    """Fresnel number 32, 16 positions, 48 px frames, buffer 16 px, from a flat probe, 30
    epochs at the engines' defaults. Measured: the data error falls 4x (ePIE, rPIE) to 12x
    (LSQML); phase correlation 0.88 (ePIE), 0.85 (rPIE), 0.95 (PINE), 0.75 (LSQML, whose
    epoch momentum leaves more of the lowest frequencies; 0.87 without it); a constant
    phase scores about 0."""
    first, last, c = nearfield_run(name, 30)
    assert last < 0.3 * first and c > 0.7, (first, last, c)


def test_the_numba_backend_runs_slices_for_the_pie_family_and_lsqml() -> None:
    """Both engines that take physics run several slices on numba (``multislice_sweep``,
    ``lsqml_fused``): ``engine.backend=numba`` is taken, not refused, and ``describe``
    records it. Would catch an engine whose ``numba_multislice`` flag is lost (the frame
    would refuse ``backend=numba`` in one line again)."""
    from ptyframe.engines.backend import numba_available

    if not numba_available():
        pytest.skip("needs numba")
    meas, geom, probe, _, dz = multislice_case()
    physics = {"name": "multislice", "n_slices": 2, "slice_spacing_m": dz}
    size = geom.object_shape[0]
    for name in ("epie", "lsqml"):
        eng = build(name, physics, epochs=1, backend="numba")
        state = ReconstructionState(
            torch.ones(1, size, size, dtype=torch.complex64),
            torch.from_numpy(probe[None]).to(torch.complex64),
            torch.from_numpy(geom.positions_px.copy()),
        )
        state = eng.init_state(state, SimpleNamespace(geometry=geom, n_angles=1))
        eng.prepare(meas, state, seed=0)
        assert eng.describe()["backend"] == "numba", name


def test_physics_the_fast_engines_do_not_run_is_refused() -> None:
    with pytest.raises(ConfigError, match="physics.refine_free_prop is not run by engine epie"):
        build("epie", {"name": "nearfield", "refine_free_prop": True})
    with pytest.raises(ConfigError, match="is not used by engine minibatch_pie"):
        build("minibatch_pie", {"name": "nearfield"})


# ---------------------------------------------------------------------- multislice
def multislice_case():
    """Two films 40 depths of field apart under a known probe, far field (numpy)."""
    m, nscan = 32, 6
    lam = wavelength_m()
    pos = raster(nscan, m // 4, 1)
    size = int(pos.max()) + m
    dz = 40 * DX**2 / lam
    f = [blobs(size, size, 1, size * size // 86, 1.2), blobs(size, size, 2, size * size // 86, 1.2)]
    o1, o2 = (np.exp(-0.6j * fi) for fi in f)
    y, x = np.mgrid[:m, :m] - m // 2
    r = np.hypot(y, x)
    probe = np.clip(m / 4 - r + 1, 0, 1) * np.exp(3j * (r / (m / 4)) ** 2)
    probe *= math.sqrt(1e7 / (np.abs(probe) ** 2).sum())
    psi = fresnel_np(windows(o1, pos, m) * probe, dz, DX, lam) * windows(o2, pos, m)
    inten = np.abs(np.fft.fft2(psi, norm="ortho")) ** 2
    geom = ScanGeometry(pos, (m, m), (size, size), E_EV, DX)
    return measurements(inten, geom), geom, probe, f, dz


def multislice_run(name: str, slices: int, epochs: int) -> tuple[float, list[list[float]]]:
    """Return (data error, [[corr(slice i, true slice j)]]) from vacuum, the known probe."""
    meas, geom, probe, f, dz = multislice_case()
    physics = {"name": "multislice", "n_slices": slices, "slice_spacing_m": dz}
    if slices == 1:
        physics = "farfield"
    eng = build(name, physics, epochs=epochs, fix_probe=True, backend="auto")
    size = geom.object_shape[0]
    state = ReconstructionState(
        torch.ones(1, size, size, dtype=torch.complex64),
        torch.from_numpy(probe[None]).to(torch.complex64),
        torch.from_numpy(geom.positions_px.copy()),
    )
    state = eng.init_state(state, SimpleNamespace(geometry=geom, n_angles=1))
    eng.prepare(meas, state, seed=0)
    err = [eng.step(e).data_error for e in range(epochs)][-1]
    m = geom.window[0]
    inner = (slice(m // 4, -m // 4), slice(m // 4, -m // 4))
    ph = [-np.angle(state.object[i].numpy())[inner] for i in range(slices)]
    return err, [[corr(ph[i], f[j][inner]) for j in range(2)] for i in range(slices)]


@pytest.mark.parametrize("name", SLICES)
def test_two_slices_are_separated_and_fit_better_than_one(name) -> None:
    """36 positions, 2 films 40 depths of field apart, the known probe, 40 epochs. Measured:
    own-slice phase correlations 0.88 / 0.95 (ePIE), 0.96 / 0.99 (rPIE), 0.97 / 1.00
    (LSQML), cross below 0.06; data errors 0.002-0.025 against 0.054-0.064 with one
    slice, whose phase correlates 0.82-0.84 with the first film."""
    err2, c2 = multislice_run(name, 2, 40)
    err1, c1 = multislice_run(name, 1, 40)
    assert c2[0][0] > 0.8 and c2[1][1] > 0.8, c2
    assert abs(c2[0][1]) < 0.3 and abs(c2[1][0]) < 0.3, c2
    assert err2 < 0.5 * err1, (err1, err2)
    assert min(c2[0][0], c2[1][1]) > max(c1[0]), (c1, c2)


def nearfield_engine(name: str, epochs: int) -> tuple[FastEngine, ReconstructionState, object]:
    """Return an engine prepared on the small near-field case, its state and measurements."""
    inten, _, _, geom, _ = nearfield_case(n=3)
    meas = image_measurements(inten, geom)
    m = geom.window[0]
    eng = build(name, {"name": "nearfield", "buffer_px": 8}, epochs=epochs)
    flat = torch.full((1, m, m), math.sqrt(float(inten.mean())), dtype=torch.complex64)
    state = ReconstructionState(
        torch.ones(1, *geom.object_shape, dtype=torch.complex64),
        flat,
        torch.from_numpy(geom.positions_px + 0.25),
    )
    state = eng.init_state(state, SimpleNamespace(geometry=geom, n_angles=1))
    eng.prepare(meas, state, seed=0)
    return eng, state, meas


def test_the_frame_does_not_centre_a_near_field_probe(monkeypatch) -> None:
    """Centring a hologram's probe (which fills the field) would roll the object away."""
    import ptyframe.engines.frame as frame

    def refuse(state):
        raise AssertionError("centred a near-field probe")

    monkeypatch.setattr(frame, "center_probe", refuse)
    eng, _, _ = nearfield_engine("epie", 1)
    eng.step(0)


@pytest.mark.parametrize("name", ["mpie", "lsqml"])
def test_a_resumed_nearfield_run_repeats_the_uninterrupted_one(name) -> None:
    """Catches state of the near-field visit left out of ``state_dict`` (momenta)."""
    whole, s_whole, _ = nearfield_engine(name, 4)
    for e in range(4):
        whole.step(e)
    first, s_first, meas = nearfield_engine(name, 4)
    for e in range(2):
        first.step(e)
    saved = first.state_dict()
    again = build(name, {"name": "nearfield", "buffer_px": 8}, epochs=4)
    state = ReconstructionState(
        s_first.object.clone(), s_first.probe.clone(), s_first.positions_px.clone()
    )
    again.prepare(meas, state, seed=0)
    again.load_state_dict(saved)
    for e in range(2, 4):
        again.step(e)
    assert torch.equal(state.object, s_whole.object) and torch.equal(state.probe, s_whole.probe)


@pytest.mark.parametrize(
    ("physics", "warned"),
    [
        # two slices 40 depths of field apart at Fresnel number 32 on 48 px frames: the
        # finest fringes travel 36 + 20 = 56 px, four times the 14 px buffer
        ({"name": "multislice", "n_slices": 2, "slice_spacing_m": 40.0, "buffer_px": 14}, 56),
        # one slice, the buffer past the 36 px reach over the detector distance
        ({"name": "nearfield", "buffer_px": 40}, None),
    ],
)
def test_a_buffer_shorter_than_the_fringe_reach_is_named_with_the_advice(
    physics, warned, caplog
) -> None:
    """A near-field run whose buffer is shorter than ``lambda d / (2 dx^2)`` over the detector
    distance plus the slices' depth is warned about once it is set up, with the reach and
    twice it as the advice; a buffer past the reach is not. Would catch the check lost, or
    the slices' depth left out of the distance (56 px would read 36), the pitfall that lets
    two slices absorb the illumination's wrap-around without an error."""
    m, size = 48, 96
    lam = wavelength_m()
    d = (m * DX) ** 2 / (lam * 32)  # reach lambda d / (2 dx^2) = m^2 / 64 = 36 px
    geom = ScanGeometry(raster(2, 48, 0), (m, m), (size, size), E_EV, DX, (d,))
    physics = {**physics, "detector": "fresnel"}
    if "slice_spacing_m" in physics:
        physics["slice_spacing_m"] = 40 * DX**2 / lam  # reach 20 px
    eng = build("epie", physics, epochs=1)
    state = ReconstructionState(
        torch.ones(1, size, size, dtype=torch.complex64),
        torch.ones(1, m, m, dtype=torch.complex64),
        torch.from_numpy(geom.positions_px.copy()),
    )
    with caplog.at_level("WARNING", logger="ptyframe.physics.multislice"):
        eng.init_state(state, SimpleNamespace(geometry=geom, n_angles=1))
    said = [r.getMessage() for r in caplog.records if "buffer_px" in r.getMessage()]
    if warned is None:
        assert said == []
    else:
        assert len(said) == 1
        assert f"physics.buffer_px = 14 is shorter than the {warned} px" in said[0]
        assert f"set physics.buffer_px={2 * warned}" in said[0]
