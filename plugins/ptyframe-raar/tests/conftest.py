"""Run the plugin's tests single-threaded (small torch ops gain nothing from a second thread)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Set one torch thread for the test and restore the previous count after it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
