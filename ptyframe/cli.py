"""Run the ``ptyframe`` console script: load plugins, then hand the command to Hydra.

Subcommands::

    ptyframe simulate out=demo.h5 [overrides]       # conf/simulate.yaml
    ptyframe reconstruct data.path=demo.h5 [...]    # conf/reconstruct.yaml (-m for multirun)
    ptyframe plugins                                # registered components and their fields
    ptyframe <plugin command> ...                   # e.g. train-denoiser (ptyframe-lightning)

Hydra finds ``conf/`` (shipped as ``pkg://ptyframe_conf``) and every plugin's config
directory through a SearchPathPlugin registered here in code (namespace-package discovery of
``hydra_plugins`` is unreliable under editable installs). Every registered component's config
dataclass is put in Hydra's ConfigStore, so ``engine=rpie engine.alpha=0.2`` is type-checked.
Errors that come from the user's input print one line and exit with code 2.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ptyframe.errors import DivergenceError, PtyframeError

SEARCH_PATHS: list[str] = []


def _fail(exc: BaseException, code: int = 2) -> int:
    print(f"ptyframe: error: {exc}", file=sys.stderr)
    return code


def _setup_hydra(registry: Any, searchpaths: list[str]) -> None:
    """Register the search-path plugin and store every structured config."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins
    from hydra.plugins.search_path_plugin import SearchPathPlugin

    from ptyframe.config import ReconstructConfig
    from ptyframe.simulation.command import SimulateRunConfig

    SEARCH_PATHS[:] = ["pkg://ptyframe_conf", *searchpaths]

    class PtyframeSearchPath(SearchPathPlugin):
        def manipulate_search_path(self, search_path: Any) -> None:
            for i, path in enumerate(SEARCH_PATHS):
                search_path.append(provider=f"ptyframe-{i}", path=path)

    Plugins.instance().register(PtyframeSearchPath)
    cs = ConfigStore.instance()
    cs.store(name="reconstruct_schema", node=ReconstructConfig)
    cs.store(name="simulate_schema", node=SimulateRunConfig)
    registry.store_configs(cs)


def _hydra_run(config_name: str, task: Callable[[Any], None], argv: list[str]) -> int:
    import hydra

    @hydra.main(version_base="1.3", config_path=None, config_name=config_name)
    def _main(cfg: Any) -> None:
        try:
            task(cfg)
        except PtyframeError as exc:
            sys.exit(_fail(exc, exc.exit_code))
        except KeyboardInterrupt:
            print(
                "ptyframe: interrupted; the current state is saved (resume=true continues)",
                file=sys.stderr,
            )
            sys.exit(130)

    saved = sys.argv
    sys.argv = [f"ptyframe {config_name}", *argv]
    try:
        _main()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:
        sys.argv = saved
    return 0


def _reconstruct_task(registry: Any) -> Callable[[Any], None]:
    def task(cfg: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        from ptyframe.runner import run

        hc = HydraConfig.get()
        out_dir = cfg.output.dir or hc.runtime.output_dir
        try:
            result = run(cfg, registry, out_dir=out_dir)
        except DivergenceError as exc:
            from hydra.types import RunMode

            if hc.mode != RunMode.MULTIRUN:
                raise
            # in a sweep over step sizes some points diverge: that is a result (recon.h5 holds
            # the last good state with status "diverged"), not a reason to stop the sweep
            logging.getLogger("ptyframe").error("job %s diverged: %s", hc.job.num, exc)
            print(f"ptyframe: diverged, recorded in {out_dir}; the sweep goes on", file=sys.stderr)
            return
        logging.getLogger("ptyframe").info(
            "wrote %s", ", ".join(p.name for p in result.files) or "nothing"
        )
        if result.out_dir is not None:
            print(f"ptyframe: results in {result.out_dir}", file=sys.stderr)

    return task


def _simulate_task(registry: Any) -> Callable[[Any], None]:
    def task(cfg: Any) -> None:
        from ptyframe.simulation.command import run_simulate

        path = run_simulate(cfg, registry)
        print(f"ptyframe: wrote {path}", file=sys.stderr)

    return task


@dataclass
class _Cmd:
    help: str
    main: Callable[[list[str]], int]


def print_plugins(registry: Any, infos: dict[str, Any]) -> None:
    """Print every plugin, then every component with its provider and config fields."""
    from ptyframe.registry import KINDS

    print("plugins (entry-point group 'ptyframe'):")
    for info in infos.values():
        print(f"  {info.name:28s} {info.distribution} {info.version}  ({info.module})")
    for kind in registry.kinds():
        names = registry.names(kind)
        if not names:
            continue
        print(f"\n{kind}  (choose with {KINDS[kind]}=<name>)")
        for name in names:
            comp = registry.get(kind, name)
            print(f"  {name:18s} {comp.doc}  [from {comp.provider}]")
            for fname, tname, default in comp.fields():
                print(f"      {fname}: {tname} = {default!r}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ptyframe`` console script; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from ptyframe.plugins import build_registry, config_searchpaths, make_plugin_manager

        pm, infos = make_plugin_manager()
        registry = build_registry(pm, infos)
        extra: dict[str, Any] = {}
        for cmds in pm.hook.ptyframe_commands():
            extra.update(cmds or {})
        searchpaths = config_searchpaths(pm)
    except PtyframeError as exc:
        return _fail(exc, exc.exit_code)
    import ptyframe.plugins as plugins_mod

    plugins_mod._DEFAULT = registry  # share the registry with components that look it up

    commands: dict[str, _Cmd] = {
        "simulate": _Cmd("simulate a dataset with ground truth (out=FILE.h5)", lambda a: 0),
        "reconstruct": _Cmd("reconstruct a dataset (data.path=FILE.h5 engine=...)", lambda a: 0),
        "plugins": _Cmd("list plugins, components, providers and config fields", lambda a: 0),
    }
    for name, fn in extra.items():
        doc = (getattr(fn, "__doc__", "") or "").strip().split("\n")[0]
        commands[name] = _Cmd(doc, fn)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: ptyframe COMMAND [hydra overrides]\n\ncommands:")
        for name, cmd in commands.items():
            print(f"  {name:14s} {cmd.help}")
        print("\n`ptyframe COMMAND --help` shows the command's config and groups.")
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in commands:
        return _fail(f"unknown command {cmd!r}; commands are: {', '.join(commands)}")
    try:
        if cmd == "plugins":
            print_plugins(registry, infos)
            return 0
        if cmd in extra:
            return int(extra[cmd](rest) or 0)
        _setup_hydra(registry, searchpaths)
        for added in pm.hook.ptyframe_hydra_overrides(command=cmd, overrides=list(rest)):
            rest += list(added or [])
        if cmd == "simulate":
            return _hydra_run("simulate", _simulate_task(registry), rest)
        return _hydra_run("reconstruct", _reconstruct_task(registry), rest)
    except PtyframeError as exc:
        return _fail(exc, exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
