"""Shared test settings and fixtures (every folder of ``tests/`` sees them).

Shared helper modules live in ``tests/_support/`` (on pytest's ``pythonpath``): import them by
module name, ``from synth import make_dataset``.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Run single-threaded: small torch ops collapse with 2 threads on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def registry():
    """The registry of every installed plugin (``ptyframe.registry()``, built once)."""
    import ptyframe

    return ptyframe.registry()
