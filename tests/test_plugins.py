"""Plugins: entry points, registry errors, a real third-party distribution used from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import pytest

from ptyframe.errors import (
    ConfigError,
    DuplicateComponentError,
    PluginError,
    UnknownComponentError,
)
from ptyframe.hookspecs import hookimpl
from ptyframe.plugins import build_registry, make_plugin_manager
from ptyframe.registry import KINDS, Registry

from plain_h5 import write_plain

HERE = Path(__file__).parent
CORE_KINDS = (
    "dataset",
    "forward_model",
    "loss",
    "regularizer",
    "optimizer",
    "engine",
    "distribution",
    "metric",
)


def test_builtins_register_through_entry_points():
    pm, infos = make_plugin_manager()
    assert "ptyframe.engines" in infos and infos["ptyframe.engines"].distribution == "ptyframe"
    reg = build_registry(pm, infos)
    for kind in CORE_KINDS:
        assert reg.names(kind), kind
    assert {"epie", "rpie"} <= set(reg.names("engine"))
    assert reg.get("engine", "epie").provider.startswith("ptyframe.engines")


def test_unknown_name_lists_the_available_ones():
    reg = build_registry()
    with pytest.raises(UnknownComponentError) as info:
        reg.get("engine", "epei")
    assert "epie" in str(info.value) and "rpie" in str(info.value)


@dataclass
class _Cfg:
    name: str = "dup"


class _PluginA:
    @hookimpl
    def ptyframe_register(self, registry):
        registry.add_metric(_Cfg, lambda c, x: None)


class _Broken:
    @hookimpl
    def ptyframe_register(self, registry):
        raise RuntimeError("boom")


def test_two_plugins_with_one_name_is_an_error_naming_both():
    pm, infos = make_plugin_manager([("plugin_a", _PluginA()), ("plugin_b", _PluginA())])
    with pytest.raises(DuplicateComponentError) as info:
        build_registry(pm, infos)
    assert "plugin_a" in str(info.value) and "plugin_b" in str(info.value)


def test_failing_plugin_is_named_and_can_be_disabled(monkeypatch):
    pm, infos = make_plugin_manager([("broken_plugin", _Broken())])
    with pytest.raises(PluginError, match="broken_plugin.*boom"):
        build_registry(pm, infos)
    monkeypatch.setenv("PTYFRAME_DISABLE_PLUGINS", "ptyframe.metrics")
    pm, infos = make_plugin_manager()
    assert "ptyframe.metrics" not in infos
    assert build_registry(pm, infos).names("metric") == []


def test_config_class_must_carry_its_name():
    """A config class without a ``name`` default, or a name in its place, is refused."""

    @dataclass
    class Bad:
        epochs: int = 1

    with pytest.raises(ConfigError, match="needs a field"):
        Registry().add_engine(Bad, lambda c, x: None)
    with pytest.raises(ConfigError, match=r"takes the config class, not a name.*add_engine"):
        Registry().add("engine", "mine", lambda c, x: None)  # type: ignore[arg-type]
    assert set(KINDS) >= set(CORE_KINDS)


def _cli(args, env_extra=None, cwd=None, timeout=240):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "ptyframe.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def _install_thirdparty(name: str, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Pip-install ``tests/thirdparty/NAME`` into a folder; return (env with it, a data file)."""
    target = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--target", str(target), str(HERE / "thirdparty" / name)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    data = tmp_path / "d.h5"
    write_plain(data)
    return {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}, data


def test_third_party_distribution_is_selected_from_the_command_line(tmp_path):
    env, data = _install_thirdparty("ptyframe-annealed", tmp_path)
    listing = _cli(["plugins"], env)
    assert "epie_annealed" in listing.stdout and "ptyframe-annealed 0.1.0" in listing.stdout
    out = tmp_path / "run"
    res = _cli(
        [
            "reconstruct",
            f"data.path={data}",
            "engine=epie_annealed_fast",
            "engine.epochs=4",
            f"output.dir={out}",
            "progress=false",
        ],
        env,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    with h5py.File(out / "recon.h5") as f:
        assert "name: epie_annealed" in f.attrs["config"] and "tau: 5.0" in f.attrs["config"]
        alphas = f["history/alpha"][()]
    from ptyframe.engines.pie import EpieConfig

    a0 = EpieConfig().alpha  # the plugin anneals ePIE's default step
    assert alphas[0] == pytest.approx(a0) and alphas[3] == pytest.approx(a0 / (1 + 3 / 5))
    # without the plugin on the path the name is unknown, and the error lists what exists
    res = _cli(["reconstruct", f"data.path={data}", "engine=epie_annealed"], cwd=tmp_path)
    assert res.returncode != 0 and "epie_annealed" in res.stderr and "epie" in res.stderr


def test_third_party_callback_runs_with_no_core_edit(tmp_path):
    """A pip-installed callback plugin is listed, added from the command line, and runs.

    Would catch: callbacks not being a registered kind, the Hydra group ``callback`` not
    holding plugin configs, ``+callback@callbacks.KEY=NAME`` not reaching the run, or the
    loop not calling a plugin's ``on_epoch_end`` with the epoch and the whole state.
    """
    env, data = _install_thirdparty("ptyframe-snapshots", tmp_path)
    listing = _cli(["plugins"], env)
    assert "object_snapshots" in listing.stdout and "ptyframe-snapshots 0.1.0" in listing.stdout
    out = tmp_path / "run"
    res = _cli(
        [
            "reconstruct",
            f"data.path={data}",
            "engine.epochs=5",
            "+callback@callbacks.snap=object_snapshots",
            "callbacks.snap.every=2",
            f"output.dir={out}",
            "progress=false",
        ],
        env,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    shots = sorted(p.name for p in (out / "snapshots").iterdir())
    assert shots == ["object_phase_0002.png", "object_phase_0004.png"]
    with h5py.File(out / "recon.h5") as f:
        assert "object_snapshots" in f.attrs["config"]
    # a field the callback lacks is one clear error, and nothing is run
    bad = _cli(
        [
            "reconstruct",
            f"data.path={data}",
            "+callback@callbacks.snap=object_snapshots",
            "callbacks.snap.evrey=2",
            f"output.dir={tmp_path / 'bad'}",
        ],
        env,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "evrey" in bad.stderr and "every" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_an_entry_point_whose_module_implements_no_hook_is_an_error(monkeypatch):
    """An emptied ``plugin.py`` once registered nothing and no core test noticed.

    Would catch: the loader accepting a module with no ``@hookimpl`` (its components silently
    missing); the error must name the entry point and how to skip it.
    """
    import types

    from ptyframe import plugins

    class FakeEntryPoint:
        name, value = "broken.plugin", "broken.plugin:module"
        dist = types.SimpleNamespace(name="broken-dist", version="1.0")

        def load(self):
            return types.ModuleType("broken_plugin")  # no hooks at all

    real = plugins._entry_points()
    monkeypatch.setattr(plugins, "_entry_points", lambda: [*real, FakeEntryPoint()])
    with pytest.raises(PluginError, match="broken.plugin.*implements no ptyframe hook"):
        plugins.make_plugin_manager()
    monkeypatch.setattr(plugins, "_entry_points", lambda: real)
    pm, infos = plugins.make_plugin_manager()  # every installed plugin implements a hook
    assert len(infos) >= 10
