"""Packaging and import layers: every package ships; core stays light and MPI/Lightning-free."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_directory_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ptyframe").rglob("__init__.py")
    }
    # folders holding only data (YAML presets, weights) are packages to setuptools too:
    # unlisted, each gives a "Package would be ignored" warning in the install log
    for top, name in ((ROOT / "ptyframe", "ptyframe"), (ROOT / "conf", "ptyframe_conf")):
        for d in top.rglob("*"):
            if d.is_dir() and "__pycache__" not in d.parts and any(d.glob("*.*")):
                found.add(".".join((name, *d.relative_to(top).parts)))
    assert found - listed == set(), f"add to [tool.setuptools] packages: {found - listed}"
    assert "ptyframe_conf" in listed and (ROOT / "conf" / "reconstruct.yaml").exists()


def test_entry_points_name_existing_modules():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for name, target in cfg["project"]["entry-points"]["ptyframe"].items():
        assert name.startswith("ptyframe."), name
        path = ROOT / (target.replace(".", "/") + ".py")
        assert path.exists(), f"{name} -> {target}"


def test_core_import_pulls_no_heavy_or_distributed_modules():
    code = (
        "import sys, ptyframe, ptyframe.runner, ptyframe.cli, ptyframe.engines.pine;"
        "ptyframe.registry();"
        "bad = [m for m in ('mpi4py', 'lightning', 'matplotlib', 'pytorch_lightning')"
        " if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={
            "PTYFRAME_DISABLE_PLUGINS": "ptyframe_lightning.commands,ptyframe_mpi.distributions",
            "PATH": "/usr/bin:/bin",
        },
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
