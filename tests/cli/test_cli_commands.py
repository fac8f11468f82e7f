"""One way to add a command: every subcommand, the core's too, comes through the hook."""

from __future__ import annotations

import types

import pytest

from ptyframe import cli
from ptyframe.errors import PluginError
from ptyframe.hookspecs import hookimpl
from ptyframe.plugins import build_registry, make_plugin_manager


def _providers(app: cli.App) -> dict[str, str]:
    """Return ``{command: plugin name}``."""
    out = {}
    for impl in app.pm.hook.ptyframe_commands.get_hookimpls():
        for name in impl.function() or {}:
            out[name] = impl.plugin_name
    return out


def test_help_lists_every_command_each_from_its_plugin(capsys) -> None:
    assert cli.main(["--help"]) == 0
    listed = [ln.split()[0] for ln in capsys.readouterr().out.splitlines() if ln.startswith("  ")]
    assert listed[:4] == ["simulate", "reconstruct", "plugins", "halfset"]
    assert {"report", "train-denoiser"} <= set(listed)
    providers = _providers(cli.load_app())
    core = {"simulate", "reconstruct", "plugins", "halfset"}
    assert {providers[c] for c in core} == {cli.CORE_COMMANDS}
    assert providers["report"] == "ptyframe.report"
    assert providers["train-denoiser"] == "ptyframe_lightning.commands"
    assert set(providers) == set(listed)


def test_a_plugin_command_runs_with_the_arguments_that_follow(capsys) -> None:
    seen: list[list[str]] = []

    def hello(argv: list[str]) -> int:
        """Say hello."""
        seen.append(argv)
        return 3

    plugin = types.SimpleNamespace(ptyframe_commands=hookimpl(lambda: {"hello": hello}))
    pm, infos = make_plugin_manager([("hello-plugin", plugin)])
    app = cli.App(pm, infos, build_registry(pm, infos))
    commands = app.commands()
    assert commands["hello"] is hello and "reconstruct" in commands
    assert commands["hello"](["a=1"]) == 3 and seen == [["a=1"]]


def test_two_plugins_offering_one_command_is_an_error_naming_both() -> None:
    plugin = types.SimpleNamespace(ptyframe_commands=hookimpl(lambda: {"reconstruct": print}))
    pm, infos = make_plugin_manager([("my-plugin", plugin)])
    app = cli.App(pm, infos, build_registry(pm, infos))
    with pytest.raises(PluginError, match="command 'reconstruct'") as err:
        app.commands()
    assert cli.CORE_COMMANDS in str(err.value) and "my-plugin" in str(err.value)


def test_without_the_core_commands_entry_point_the_error_says_reinstall(
    monkeypatch, capsys
) -> None:
    monkeypatch.setenv("PTYFRAME_DISABLE_PLUGINS", cli.CORE_COMMANDS)
    assert cli.main(["reconstruct", "data.path=x.h5"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'reconstruct'" in err and "reinstall ptyframe" in err
