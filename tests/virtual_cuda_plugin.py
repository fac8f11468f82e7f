"""A pytest plugin that runs the ``gpu`` tier on the virtual CUDA device (a CPU dry run).

``PYTHONPATH=tests python -m pytest -p virtual_cuda_plugin -m gpu tests/test_gpu.py``:
every test runs inside ``virtual_cuda.VirtualCuda``, so the tier's own logic (device moves,
tolerances between the CPU paths, files) is checked without a GPU. It proves nothing about
CUDA's numerics or speed; only a run on a real device does.
"""

from __future__ import annotations

import os

import pytest
import torch

from virtual_cuda import VirtualCuda

torch.cuda.is_available = lambda: True  # before test_gpu's skipif is evaluated
os.environ["PTYFRAME_VIRTUAL_CUDA"] = "1"  # tests that need CUDA's own API skip on it


@pytest.fixture(autouse=True)
def _virtual_cuda():
    with VirtualCuda():
        yield
