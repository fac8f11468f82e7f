"""benchmarks/peers: the failure detection of the scorer, and one tiny truth-probe mapping run
per peer (slow; skipped with a message when the peer's venv is absent: `make peers`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from ptyframe.simulation.simulate import simulate_dataset

from _lib.score import Row, Truth, like_constant_frc, score

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "benchmarks" / "peers"


@pytest.fixture(scope="module")
def tiny_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 36-pattern, 32x32 particle case at 1e6 photons (seed 0), written once."""
    path = tmp_path_factory.mktemp("peers") / "tiny.h5"
    sim = simulate_dataset(
        phantom={"name": "particles", "max_phase_rad": 1.0, "radius_max_px": 6.0},
        probe={"name": "focused"},
        scan={"name": "step_raster", "n": 6, "step_px": 5.0, "jitter_px": 1.0},
        window_px=32,
        photons_per_pattern=1e6,
        seed=0,
    )
    sim.write(path)
    return path


def test_scorer_flags_constant_nan_and_shifted_check(tiny_case: Path) -> None:
    truth = Truth.read(tiny_case)
    const = score(Row("c", "t", "e", "default", 1, 1), np.ones_like(truth.object), [], truth)
    assert const.status.startswith("FAILED: scores like a constant")
    bad = truth.object.copy()
    bad[3, 4] = np.nan
    nan = score(Row("c", "t", "e", "default", 1, 1), bad, [0.1], truth)
    assert nan.status.startswith("FAILED: object has 1 non-finite")
    good = score(Row("c", "t", "e", "truth probe", 1, 1), truth.object, [0.1], truth)
    assert good.status.startswith("mapping ok") and good.nrmse < 1e-3
    shifted = np.roll(truth.object, 1, axis=1)
    moved = score(Row("c", "t", "e", "truth probe", 1, 1), shifted, [0.1], truth)
    assert moved.status.startswith("FAILED: mapping check shift")
    assert abs(moved.shift_x_px - 1.0) < 0.1


def test_scorer_flags_a_result_with_no_structure_at_the_scored_bands(tiny_case: Path) -> None:
    """A result whose NRMSE passes the constant's fraction (0.94 of it, as a 4 px run's did)
    but whose FRC at 1/4 and 1/2 Nyquist is that of a constant is flagged; one with structure
    at 1/4 Nyquist is not. Catches a scorer that again decides on the NRMSE alone."""
    truth = Truth.read(tiny_case)
    const = truth.measure(np.ones_like(truth.object))
    rows = []
    for frc_quarter in (const["frc_0.25"] + 0.03, 0.3):
        row = Row("c", "t", "e", "default", 1, 1, nrmse=0.94 * truth.constant_nrmse)
        row.frc_0_25, row.frc_0_5 = frc_quarter, const["frc_0.5"] + 0.01
        rows.append(like_constant_frc(row, truth))
    assert rows == [True, False]
    blank = score(Row("c", "t", "e", "default", 1, 1), np.ones_like(truth.object), [], truth)
    assert blank.status.startswith("FAILED: scores like a constant")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("venv", "script", "engine"),
    [(".venv-ptylab", "run_ptylab.py", "ePIE"), (".venv-ptychi", "run_ptychi.py", "EPIE")],
)
def test_peer_truth_probe_run_lands_at_zero_shift(
    tiny_case: Path, tmp_path: Path, venv: str, script: str, engine: str
) -> None:
    python = ROOT / venv / "bin" / "python"
    if not python.exists():
        pytest.skip(f"{venv} is absent: run `make peers` to install the peer")
    out = tmp_path / "out.npz"
    cmd = [str(python), str(PEERS / script), str(tiny_case), str(out), "--engine", engine]
    subprocess.run([*cmd, "--sweeps", "20", "--truth-probe"], check=True, capture_output=True)
    res = np.load(out)
    truth = Truth.read(tiny_case)
    row = score(Row("tiny", venv, engine, "truth probe", 20, 1), res["object"], [], truth)
    assert row.status.startswith("mapping ok"), row.status
    assert row.nrmse < 0.8 * truth.constant_nrmse
