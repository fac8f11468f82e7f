"""``device=cuda`` on the CPU: every engine, the outputs, checkpoints, on a simulated device.

``tests/virtual_cuda.py`` gives tensors a virtual ``cuda:0`` device and enforces CUDA's
rules (no host/device mixing, no ``.numpy()`` of a device tensor, factories without
``device=`` make host tensors). A tensor made on the wrong device, a ``.numpy()`` on the
object or the measurements, or a device tensor pickled into a checkpoint fails these tests
as it would fail on a GPU. They cannot see CUDA's own numerics or speed: that is the ``gpu``
tier (``tests/test_gpu.py``), which needs a real device.
"""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest
import torch

import ptyframe.runner
from ptyframe.callbacks.base import Callback
from ptyframe.io.checkpoint import load_checkpoint

from registered import PTYCHO_ENGINES as ENGINES
from signalled import StopAfter
from synth import make_dataset
from virtual_cuda import DeviceMismatch, VirtualCuda


def test_the_virtual_device_enforces_cudas_rules() -> None:
    """The simulator itself: each rule a real GPU enforces raises here too."""
    with VirtualCuda() as vc:
        dev = torch.ones(4, device="cuda")
        host = torch.zeros(4)
        assert dev.device.type == "cuda" and host.device.type == "cpu"
        with pytest.raises(DeviceMismatch):
            _ = dev + host
        with pytest.raises(TypeError, match="numpy"):
            dev.numpy()
        with pytest.raises(TypeError, match="numpy"):
            np.asarray(dev)
        assert vc.on_device(dev * 2 + torch.tensor(1.0))  # 0-d host scalars may mix
        assert vc.on_device(torch.zeros(3, device=dev.device))
        assert vc.on_device(torch.from_numpy(np.ones(3)).to(dev.device))
        assert not vc.on_device(dev.cpu()) and not vc.on_device(dev.to("cpu"))
        assert vc.on_device(dev[torch.tensor([0, 2])])  # host indices may index
        with pytest.raises(TypeError, match="pickled"):
            torch.save(dev, io.BytesIO())
        net = torch.nn.Conv2d(1, 1, 3).to("cuda")
        assert vc.on_device(net(torch.ones(1, 1, 5, 5, device="cuda")))
        with pytest.raises(DeviceMismatch):
            net(torch.ones(1, 1, 5, 5))


def _cfg(name: str, out, device: str, images: bool = False, **extra) -> dict:
    return {
        "engine": {"name": name, "epochs": 2},
        "device": device,
        "progress": False,
        "metrics": {"every": 1},
        "output": {"dir": str(out), "images": images, "checkpoint_every": 1},
        **extra,
    }


@pytest.fixture(scope="module")
def subpixel():
    """16 positions of 16x16 with fractional parts (the sub-pixel paths run too)."""
    return make_dataset(m=16, n=4, step=5.0, jitter=0.4)


@pytest.mark.parametrize("optimizer", ["scipy", "cg", "lbfgs", "momentum"])
def test_autodiffs_optimizers_run_with_device_cuda(optimizer, subpixel, tmp_path) -> None:
    """The line-search optimizers and SciPy's (which works on NumPy copies of the unknowns)."""
    opt = {"object": {"name": optimizer}, "probe": {"name": optimizer}}
    cfg = _cfg("autodiff", tmp_path, "cuda")
    cfg["engine"]["optimizers"] = opt
    with VirtualCuda() as vc:
        res = ptyframe.runner.run(cfg, dataset=subpixel)
        assert vc.on_device(res.state.object)


@pytest.mark.parametrize("name", ENGINES)
def test_every_engine_runs_and_writes_with_device_cuda(name, subpixel, tmp_path) -> None:
    """Two epochs with metrics, a periodic checkpoint and ``recon.h5`` (images for two
    engines: they are drawn from the state alone): the state stays on the device, and the
    result equals the CPU run's to float tolerance (PIE: the torch sweep against the fused
    CPU sweep)."""
    images = name in ("epie", "autodiff")
    with VirtualCuda() as vc:
        cfg = _cfg(name, tmp_path / "dev", "cuda", images=images)
        res = ptyframe.runner.run(cfg, dataset=subpixel)
        assert vc.on_device(res.state.object) and vc.on_device(res.state.probe)
        obj_dev = res.state.object.cpu()
    cpu = ptyframe.runner.run(_cfg(name, tmp_path / "cpu", "cpu"), dataset=subpixel)
    with h5py.File(tmp_path / "dev" / "recon.h5") as f:
        written = f["object"][()]
        assert "frc" in f["history"] or len(f["history"]) > 1
    assert np.allclose(written, obj_dev.numpy())
    ref = cpu.state.object
    err = float((obj_dev - ref).abs().max() / ref.abs().max())
    assert err < 1e-4, err
    assert (tmp_path / "dev" / "object_phase.png").exists() == images


@pytest.mark.parametrize("name", ["mpie", "autodiff"])
def test_a_checkpoint_written_on_the_device_loads_without_one_and_resumes(
    name, subpixel, tmp_path
) -> None:
    """Engine state (mPIE momentum, optimizer moments) is saved host-side and resumed."""
    out = tmp_path / "run"
    cfg = _cfg(name, out, "cuda")
    cfg["engine"]["epochs"] = 3
    with VirtualCuda():
        with pytest.raises(KeyboardInterrupt):
            ptyframe.runner.run(cfg, dataset=subpixel, callbacks=[StopAfter(1)])
    ckpt = load_checkpoint(out / "checkpoint.h5", "cpu")  # no mode: a machine without a GPU
    assert ckpt.next_epoch == 1 and ckpt.engine_state
    with VirtualCuda() as vc:
        res = ptyframe.runner.run({**cfg, "resume": True}, dataset=subpixel)
        assert vc.on_device(res.state.object)
        assert len(res.history.epochs) == 3


def test_hio_runs_on_the_device() -> None:
    """Full-field CDI: the random start phase is made on the device of the pattern."""
    from ptyframe.data.geometry import ScanGeometry
    from ptyframe.data.measurements import Measurements
    from ptyframe.engines.cdi import HioConfig, HioEngine
    from ptyframe.state import ReconstructionState

    m = 32
    rng = np.random.default_rng(0)
    obj = np.zeros((m, m), complex)
    obj[12:20, 10:22] = np.exp(1j * rng.uniform(0, 1, (8, 12)))
    inten = np.abs(np.fft.fft2(obj, norm="ortho")) ** 2
    geom = ScanGeometry(np.zeros((1, 2)), (m, m), (m, m), 8000.0, 20e-9)
    with VirtualCuda() as vc:
        meas = Measurements(
            torch.from_numpy(np.sqrt(inten)[None]).float().to("cuda"), None, np.zeros(1), geom
        )
        one = torch.ones(1, m, m, dtype=torch.complex64, device="cuda")
        state = ReconstructionState(one, one.clone(), torch.zeros(1, 2, device="cuda"))
        engine = HioEngine(HioConfig(epochs=3, seed=0))
        engine.prepare(meas, state)
        reports = [engine.step(e) for e in range(3)]
        assert vc.on_device(state.object) and vc.on_device(state.extras["support"])
    assert reports[-1].data_error < reports[0].data_error


class _Spy(Callback):
    """Record where the run keeps its patterns and its unknowns after ``prepare``."""

    def __init__(self, vc: VirtualCuda) -> None:
        self.vc = vc
        self.seen: tuple[bool, bool] | None = None

    def on_prepared(self, run) -> None:
        self.seen = (
            self.vc.on_device(run.measurements[0].amplitudes),
            self.vc.on_device(run.state.object),
        )


@pytest.mark.parametrize("name", ["epie", "minibatch_pie", "lsqml", "autodiff"])
def test_patterns_on_the_host_stream_to_the_device_per_batch(name, subpixel, tmp_path) -> None:
    """``patterns_on_host=true``: the patterns stay in host memory, the unknowns on the
    device, every batch is sent over; the result is the one of patterns on the device."""
    results = []
    for on_host in (True, False):
        with VirtualCuda() as vc:
            spy = _Spy(vc)
            cfg = _cfg(name, tmp_path / str(on_host), "cuda", patterns_on_host=on_host)
            res = ptyframe.runner.run(cfg, dataset=subpixel, callbacks=[spy])
            results.append(res.state.object.cpu())
        assert spy.seen == (not on_host, True)
    assert torch.allclose(results[0], results[1], atol=1e-6)


def test_raar_refuses_patterns_on_the_host(subpixel, tmp_path) -> None:
    """RAAR stores an exit wave per position: streaming the patterns would save nothing."""
    from ptyframe.errors import ConfigError

    with VirtualCuda(), pytest.raises(ConfigError, match="patterns_on_host=false"):
        ptyframe.runner.run(_cfg("raar", tmp_path, "cuda", patterns_on_host=True), dataset=subpixel)


def test_the_python_facade_takes_the_device(subpixel) -> None:
    """``ptyframe.reconstruct(..., device="cuda", patterns_on_host=True)``."""
    import ptyframe

    with VirtualCuda() as vc:
        res = ptyframe.reconstruct(
            subpixel, "lsqml", epochs=1, device="cuda", patterns_on_host=True
        )
        assert vc.on_device(res.state.object)


def test_several_processes_on_a_gpu_are_refused_up_front() -> None:
    """The MPI modes reduce CPU tensors: ``device=cuda`` with two ranks is a config error
    before any work (not a failure at the first reduction)."""
    from dataclasses import dataclass
    from types import SimpleNamespace

    from ptyframe import compose
    from ptyframe.distributed.base import SingleConfig, SingleProcess
    from ptyframe.errors import ConfigError
    from ptyframe.registry import BuildContext, Registry

    @dataclass
    class TwoConfig(SingleConfig):
        name: str = "two"

    class Two(SingleProcess):
        size = 2

    reg = Registry()
    reg.add_distribution(TwoConfig, Two)
    run = SimpleNamespace(distribution="two")
    assert compose.build_distribution(run, reg, BuildContext(reg, "cpu")).size == 2
    with pytest.raises(ConfigError, match="GPU-aware MPI is not wired"):
        compose.build_distribution(run, reg, BuildContext(reg, "cuda"))
