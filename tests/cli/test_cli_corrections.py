"""The corrections' bad input on the command line: one line, exit 2, nothing written.

What it would catch: a nonsense step limit or start that runs anyway, OPR with more
eigen-probes than patterns, position correction on a scan of one position, or a correction
asked of an engine that does not declare it, failing with a traceback or after the run's
folder was made.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from plain_h5 import write_plain


def _cli(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "ptyframe.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ},
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("corrections")
    write_plain(d / "scan.h5")  # 16 positions
    write_plain(d / "one.h5", n=1)  # a single position
    return d


@pytest.mark.parametrize(
    "data, args, message",
    [
        (
            "scan.h5",
            ["engine.refine.positions=true", "engine.positions.max_step_px=0"],
            "engine.positions.max_step_px = 0.0 must be > 0",
        ),
        (
            "scan.h5",
            ["engine.refine.positions=true", "engine.positions.start=-2"],
            "engine.positions.start = -2 must be a whole sweep number >= 0",
        ),
        (
            "scan.h5",
            ["engine.probe_variation.modes=40"],
            "engine.probe_variation.modes = 40 exceeds the 16 patterns",
        ),
        (
            "one.h5",
            ["engine.refine.positions=true"],
            "engine.refine.positions=true needs at least 2 positions",
        ),
        (
            "scan.h5",
            ["engine=raar", "engine.refine.positions=true"],
            "engine raar does not refine positions",
        ),
        (
            "scan.h5",
            ["engine=lsqml", "engine.flux.refine=true"],
            "engine lsqml does not refine flux",
        ),
    ],
)
def test_bad_correction_settings_are_one_line_exit_2_nothing_written(
    files, tmp_path, data, args, message
):
    res = _cli(["reconstruct", f"data.path={files / data}", "output.dir=run", *args], tmp_path)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert not (tmp_path / "run").exists()
    assert not list(tmp_path.iterdir())
