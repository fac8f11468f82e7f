"""A reduced (3x3) sweep runs, continues without redoing runs, and reports CSV + figures."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from plain_h5 import write_plain


def _cli(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "ptyframe.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env={**os.environ},
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    write_plain(d / "d.h5")
    args = [
        "reconstruct",
        "-m",
        "data.path=d.h5",
        "+sweep=alpha_beta_small",
        "engine=epie",
        "engine.epochs=3",
        "progress=false",
        "metrics.every=0",
        "output.images=false",
        "output.skip_done=true",
        "hydra.sweep.dir=sweep",
    ]
    res = _cli(args, d)
    assert res.returncode == 0, res.stderr
    return d, args


def test_sweep_runs_the_grid_and_continues_without_redoing(sweep):
    d, args = sweep
    results = sorted((d / "sweep").glob("*/recon.h5"))
    assert len(results) == 9
    # interrupt simulation: one run lost, the rest kept; rerunning redoes only that one
    stamps = {p: p.stat().st_mtime_ns for p in results}
    shutil.rmtree(results[4].parent)
    res = _cli(args, d)
    assert res.returncode == 0, res.stderr
    again = sorted((d / "sweep").glob("*/recon.h5"))
    assert len(again) == 9
    changed = [p for p in again if stamps.get(p) != p.stat().st_mtime_ns]
    assert changed == [results[4]]


def test_report_gathers_csv_and_figures(sweep):
    d, _ = sweep
    res = _cli(["report", "sweep"], d)
    assert res.returncode == 0, res.stderr
    out = d / "sweep" / "report"
    with open(out / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9
    assert {(float(r["alpha"]), float(r["beta"])) for r in rows} == {
        (a, b) for a in (0.1, 0.3, 0.5) for b in (0.1, 0.2, 0.5)
    }
    for r in rows:
        with h5py.File(os.path.join(r["run"], "recon.h5")) as f:
            assert float(r["data_error"]) == pytest.approx(f["history/data_error"][-1], rel=1e-5)
            assert int(r["epochs"]) == 3
    for name in ("heatmap_epie.png", "panels.png", "report.html"):
        assert (out / name).stat().st_size > 5000, name
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2 and html.count("<tr>") == 10


def test_report_heatmap_holds_the_frc_values(tmp_path):
    # a truth-bearing simulated sweep so FRC exists
    res = _cli(
        [
            "reconstruct",
            "-m",
            "data=simulated",
            "+data.simulation.window_px=32",
            "+data.scan.n_y=4",
            "+data.scan.n_x=4",
            "engine=epie",
            "engine.epochs=2",
            "engine.alpha=0.3,0.6",
            "engine.beta=0.2,0.4",
            "progress=false",
            "output.images=false",
            "hydra.sweep.dir=sim",
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    res = _cli(["report", "sim", "--out", "rep"], tmp_path)
    assert res.returncode == 0, res.stderr
    with open(tmp_path / "rep" / "report.csv") as f:
        rows = list(csv.DictReader(f))
    frc = [float(r["frc_half_nyquist"]) for r in rows]
    assert len(frc) == 4 and all(np.isfinite(frc))
    for name in ("heatmap_epie.png", "frc_vs_epoch.png", "frc_vs_time.png"):
        img = tmp_path / "rep" / name
        assert img.stat().st_size > 5000


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_report_renders_in_a_headless_browser(sweep, tmp_path):
    d, _ = sweep
    page = d / "sweep" / "report" / "report.html"
    if not page.exists():
        assert _cli(["report", "sweep"], d).returncode == 0
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 20000
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.std() > 0.05  # not a blank page
