"""ptyframe sets OMP_WAIT_POLICY=PASSIVE before torch loads, never over the user's choice."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW = "import os; {pre}import ptyframe; print(os.environ.get('OMP_WAIT_POLICY', '(unset)'))"


@pytest.mark.parametrize(
    ("user", "pre", "want"),
    [
        (None, "", "PASSIVE"),  # default: idle OpenMP threads sleep
        ("ACTIVE", "", "ACTIVE"),  # the user's setting stays
        (None, "import torch; ", "(unset)"),  # torch loaded first: too late, left alone
    ],
)
def test_import_sets_passive_wait_policy_only_before_torch_and_unset(user, pre, want):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if user:
        env["OMP_WAIT_POLICY"] = user
    out = subprocess.run(
        [sys.executable, "-c", SHOW.format(pre=pre)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert out.strip() == want
