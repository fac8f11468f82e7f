"""The GPU tier: CPU and CUDA agree on small cases (``pytest -m gpu tests/test_gpu.py``).

Every engine, the shipped denoiser, the outputs (``recon.h5``, images, a checkpoint written
on the GPU and read without one) and host-resident patterns. Without a CUDA device every
test skips (and the default run deselects the ``gpu`` marker). The engine comparisons run
in complex128, where cuFFT and the CPU's FFT agree to ~1e-12 and any difference beyond
1e-6 after three epochs is a difference of algorithm, not of rounding (PINE: 1e-4, its
denoiser runs in float32); one float32 run per engine family checks the default dtype to
1e-3. A CPU dry run of this file on the simulated device of ``tests/virtual_cuda.py``:
``PYTHONPATH=tests python -m pytest -p virtual_cuda_plugin -m gpu tests/test_gpu.py``.
TF32 is off for the denoiser comparison (cuDNN's TF32 convolutions round to ~1e-3).
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import torch

import ptyframe.runner
from ptyframe.io.checkpoint import load_checkpoint

from registered import PTYCHO_ENGINES as ENGINES
from signalled import StopAfter
from synth import make_dataset

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


@pytest.fixture(scope="module")
def subpixel():
    """49 positions of 32x32 with fractional parts, noiseless."""
    return make_dataset(m=32, n=7, step=6.0, jitter=0.4)


def _cfg(name: str, out, device: str, dtype: str = "complex128", **extra) -> dict:
    return {
        "engine": {"name": name, "epochs": 3},
        "device": device,
        "dtype": dtype,
        "progress": False,
        "metrics": {"every": 0},
        "output": {"dir": str(out), "images": False, "checkpoint_every": 0},
        **extra,
    }


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().cpu().to(torch.complex128), b.detach().cpu().to(torch.complex128)
    return float((a - b).norm() / b.norm())


def _both(name: str, data, tmp_path, dtype: str, **extra):
    cpu = ptyframe.runner.run(_cfg(name, tmp_path / "cpu", "cpu", dtype, **extra), dataset=data)
    gpu = ptyframe.runner.run(_cfg(name, tmp_path / "gpu", "cuda", dtype, **extra), dataset=data)
    torch.cuda.synchronize()
    return cpu, gpu


@pytest.fixture(autouse=True)
def _no_tf32():
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@pytest.mark.parametrize("name", ENGINES)
def test_engine_on_cuda_matches_cpu_in_double(name, subpixel, tmp_path) -> None:
    cpu, gpu = _both(name, subpixel, tmp_path, "complex128")
    assert gpu.state.object.device.type == "cuda"
    tol = 1e-4 if name == "pine" else 1e-6  # PINE's denoiser runs in float32
    assert _rel(gpu.state.object, cpu.state.object) < tol
    assert _rel(gpu.state.probe, cpu.state.probe) < tol
    assert gpu.metrics["data_error"] == pytest.approx(cpu.metrics["data_error"], rel=tol)


@pytest.mark.parametrize("name", ["epie", "lsqml", "autodiff"])
def test_engine_on_cuda_matches_cpu_in_float32(name, subpixel, tmp_path) -> None:
    cpu, gpu = _both(name, subpixel, tmp_path, "complex64")
    assert _rel(gpu.state.object, cpu.state.object) < 1e-3
    assert gpu.metrics["data_error"] == pytest.approx(cpu.metrics["data_error"], rel=1e-3)


def test_hio_on_cuda_matches_cpu() -> None:
    from ptyframe.data.geometry import ScanGeometry
    from ptyframe.data.measurements import Measurements
    from ptyframe.engines.cdi import HioConfig, HioEngine
    from ptyframe.state import ReconstructionState

    m = 64
    rng = np.random.default_rng(0)
    obj = np.zeros((m, m), complex)
    obj[24:40, 20:44] = np.exp(1j * rng.uniform(0, 1, (16, 24)))
    amp = torch.from_numpy(np.abs(np.fft.fft2(obj, norm="ortho"))[None])
    geom = ScanGeometry(np.zeros((1, 2)), (m, m), (m, m), 8000.0, 20e-9)
    out = []
    for dev in ("cpu", "cuda"):
        one = torch.ones(1, m, m, dtype=torch.complex128, device=dev)
        state = ReconstructionState(one, one.clone(), torch.zeros(1, 2, device=dev))
        engine = HioEngine(HioConfig(epochs=4, seed=0))
        engine.prepare(Measurements(amp.to(dev), None, np.zeros(1), geom), state)
        for e in range(4):
            engine.step(e)
        out.append(state.object)
    assert _rel(out[1], out[0]) < 1e-6


def test_shipped_denoiser_on_cuda_matches_cpu() -> None:
    from ptyframe.denoise.apply import ComplexDenoiser
    from ptyframe.denoise.weights import load_denoiser

    obj = torch.polar(
        torch.rand(1, 200, 180, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.5,
        torch.rand(1, 200, 180, generator=torch.Generator().manual_seed(1)) - 0.5,
    ).to(torch.complex64)
    cpu = ComplexDenoiser(load_denoiser(None, "cpu"), tile_px=128)(obj)
    gpu = ComplexDenoiser(load_denoiser(None, "cuda"), tile_px=128, device="cuda")(obj.cuda())
    assert gpu.device.type == "cuda" and gpu.dtype == obj.dtype
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)


def test_outputs_and_a_checkpoint_written_on_cuda(subpixel, tmp_path) -> None:
    """``recon.h5`` and images from a CUDA run; its checkpoint loads on the CPU and resumes
    on the GPU to the uninterrupted result."""
    out = tmp_path / "run"
    cfg = _cfg("mpie", out, "cuda", "complex64")
    cfg["output"] = {"dir": str(out), "images": True, "checkpoint_every": 1}
    cfg["metrics"] = {"every": 1}
    with pytest.raises(KeyboardInterrupt):
        ptyframe.runner.run(cfg, dataset=subpixel, callbacks=[StopAfter(2)])
    ckpt = load_checkpoint(out / "checkpoint.h5", "cpu")
    assert ckpt.next_epoch == 2
    assert all(t.device.type == "cpu" for t in ckpt.engine_state.values() if torch.is_tensor(t))
    resumed = ptyframe.runner.run({**cfg, "resume": True}, dataset=subpixel)
    whole = ptyframe.runner.run(
        {**cfg, "output": {**cfg["output"], "dir": str(tmp_path / "whole")}}, dataset=subpixel
    )
    assert _rel(resumed.state.object, whole.state.object) < 1e-5
    with h5py.File(out / "recon.h5") as f:
        assert np.allclose(f["object"][()], resumed.state.object.cpu().numpy())
    assert (out / "object_phase.png").exists() and (out / "frc.png").exists()


@pytest.mark.parametrize("name", ["minibatch_pie", "lsqml", "autodiff", "epie"])
def test_patterns_on_the_host_give_the_on_device_result(name, subpixel, tmp_path) -> None:
    on = ptyframe.runner.run(_cfg(name, tmp_path / "dev", "cuda"), dataset=subpixel)
    host = ptyframe.runner.run(
        _cfg(name, tmp_path / "host", "cuda", patterns_on_host=True), dataset=subpixel
    )
    torch.cuda.synchronize()
    assert _rel(host.state.object, on.state.object) < 1e-12


def test_denoiser_training_runs_on_the_gpu_and_exports_cpu_weights(tmp_path) -> None:
    """A tiny Lightning fit with ``trainer.accelerator=gpu`` (RealSN's power iterations on
    the device); the exported weights load without a GPU and stay nonexpansive."""
    pytest.importorskip("ptyframe_lightning")
    if os.environ.get("PTYFRAME_VIRTUAL_CUDA"):
        pytest.skip("Lightning's GPU accelerator needs a real device")
    from ptyframe_lightning.train import main

    from ptyframe.denoise.dncnn import lipschitz_bound
    from ptyframe.denoise.weights import load_denoiser

    tiny = [
        "trainer.fast_dev_run=true",
        "trainer.accelerator=gpu",
        "trainer.devices=1",
        "data.n_train=4",
        "data.n_val=2",
        "data.batch_size=4",
        "data.patch_px=24",
        "model.arch.depth=3",
        "model.arch.channels=4",
        "threads=1",
    ]
    out = tmp_path / "run"
    assert main([*tiny, f"output_dir={out}", "data.kind=textured"]) == 0
    model = load_denoiser(str(out / "dncnn_realsn.pt"), "cpu")
    assert next(model.parameters()).device.type == "cpu"
    assert lipschitz_bound(model) <= 1.0 + 1e-3
