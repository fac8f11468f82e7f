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

from ptyframe.errors import ConfigError as PtyframeConfigError
from ptyframe.errors import DivergenceError, PtyframeError
from ptyframe.overrides import check_overrides, overrides_of

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


def _hydra_run(config_name: str, task: Callable[[Any], Any], argv: list[str]) -> int:
    import hydra

    @hydra.main(version_base="1.3", config_path=None, config_name=config_name)
    def _main(cfg: Any) -> Any:
        try:
            return task(cfg)  # the objective of a sweeper (Optuna), see _reconstruct_task
        except PtyframeError as exc:
            _remove_if_empty_run_dir()
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


#: What Hydra itself puts into a run directory; a directory holding only these is empty.
_HYDRA_ONLY = {".hydra"}


def _remove_if_empty_run_dir() -> None:
    """Remove the Hydra run directory of a failed single run if it holds only Hydra's files.

    A run that fails before its first epoch (a missing file, a bad value) writes nothing, so
    its directory holds only ``.hydra/`` and the job log: removing it leaves no trace. A
    directory with anything else (a checkpoint, a result, the user's files) is kept.
    """
    import shutil
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        hc = HydraConfig.get()
    except ValueError:
        return
    if hc.mode == RunMode.MULTIRUN:
        return
    out = Path(hc.runtime.output_dir)
    log_name = f"{hc.job.name}.log"
    if not out.is_dir() or any(p.name not in _HYDRA_ONLY | {log_name} for p in out.iterdir()):
        return
    logging.shutdown()
    shutil.rmtree(out, ignore_errors=True)
    cwd = Path.cwd().resolve()
    parent = out.resolve().parent
    for _ in range(2):  # outputs/DATE/ and outputs/ when they are left empty
        if parent == cwd or cwd not in parent.parents or any(parent.iterdir()):
            break
        parent.rmdir()
        parent = parent.parent


def _prepare_argv(argv: list[str]) -> list[str]:
    """Return ``argv`` with the run directory made the one the user named.

    ``output.dir=X`` (single run) also sets ``hydra.run.dir=X``, so ``.hydra/`` and the log
    live beside ``recon.h5`` and ``resume=true output.dir=X`` finds the run again. A resumed
    run keeps the first launch's ``.hydra/`` and writes its own under
    ``.hydra/resumed-DATE-TIME``; the job log is appended to.
    """
    multirun = any(a in ("-m", "--multirun") for a in argv)
    keys = {a.split("=", 1)[0].lstrip("+"): a.split("=", 1)[1] for a in argv if "=" in a}
    out = list(argv)
    if "output.dir" in keys and "hydra.run.dir" not in keys and not multirun:
        if keys["output.dir"] not in ("", "null", "None"):
            out.append(f"hydra.run.dir={keys['output.dir']}")
    if keys.get("resume", "").lower() == "true" and "hydra.output_subdir" not in keys:
        import time

        out.append(f"hydra.output_subdir=.hydra/resumed-{time.strftime('%Y%m%d-%H%M%S')}")
    return out


def _validator(cmd: str) -> Callable[[Any], None]:
    """Return the check run on the composed config of ``cmd`` (range and type checks)."""

    def reconstruct(body: Any) -> None:
        from ptyframe.runner import typed_config

        typed_config(body)

    def simulate(body: Any) -> None:
        from omegaconf import OmegaConf

        if OmegaConf.is_missing(body, "out"):
            raise PtyframeConfigError("no output file: give `out=FILE.h5`")
        OmegaConf.to_object(body)

    return reconstruct if cmd == "reconstruct" else simulate


def _reconstruct_task(registry: Any) -> Callable[[Any], float | None]:
    """Return the Hydra task of ``ptyframe reconstruct``.

    It returns the run's final ``validation_error`` (``data.validation_fraction > 0``), the
    objective the Optuna sweeper minimises (``conf/sweep/tune_*.yaml``); ``inf`` for a run
    that diverged inside a multirun; None without a validation split.
    """

    def task(cfg: Any) -> float | None:
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
            return float("inf")
        logging.getLogger("ptyframe").info(
            "wrote %s", ", ".join(p.name for p in result.files) or "nothing"
        )
        if result.out_dir is not None:
            print(f"ptyframe: results in {result.out_dir}", file=sys.stderr)
        value = result.metrics.get("validation_error")
        return None if value is None else float(value)

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


def _print_core_callbacks() -> None:
    """Print the always-on callbacks and the settings of each."""
    from ptyframe.callbacks.core import CORE

    print("  always on (in this order), with their settings:")
    for name, settings in CORE.items():
        print(f"  {name:18s} {settings}")


def print_plugins(registry: Any, infos: dict[str, Any]) -> None:
    """Print every plugin, then every component with its provider, fields and presets.

    Each kind's line gives the command line that selects it (``registry.CHOOSE``; a test runs
    every one), and the presets are the YAML options of its Hydra group that are not
    components themselves (``conf/engine/rpie_lowdose.yaml``, a plugin's ``dm``).
    """
    from ptyframe.overrides import group_options
    from ptyframe.registry import CHOOSE, KINDS, choose_hint

    print("plugins (entry-point group 'ptyframe'):")
    for info in infos.values():
        print(f"  {info.name:28s} {info.distribution} {info.version}  ({info.module})")
    for kind in registry.kinds():
        names = registry.names(kind)
        if not names:
            continue
        note = CHOOSE.get(kind, ("", "", ""))[2]
        print(f"\n{kind}  (choose with: {choose_hint(kind)}){note}")
        for name in names:
            comp = registry.get(kind, name)
            print(f"  {name:18s} {comp.doc}  [from {comp.provider}]")
            for fname, tname, default in comp.fields():
                print(f"      {fname}: {tname} = {default!r}")
        try:
            presets = [p for p in group_options(KINDS[kind]) if p not in names]
        except Exception:  # noqa: BLE001 - a kind without a Hydra group
            presets = []
        if presets:
            print(f"  presets ({KINDS[kind]}=<preset>): {', '.join(presets)}")
        if kind == "callback":
            _print_core_callbacks()
    for group in ("experiment", "sweep", "callbacks"):
        try:
            options = group_options(group)
        except Exception:  # noqa: BLE001
            continue
        plus = "" if group == "callbacks" else "+"  # callbacks has a default (none)
        print(f"\n{group}  (choose with: ptyframe reconstruct {plus}{group}=<name>)")
        print(f"  {', '.join(options)}")


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
        if cmd in extra:
            return int(extra[cmd](rest) or 0)
        _setup_hydra(registry, searchpaths)
        if cmd == "plugins":
            print_plugins(registry, infos)
            return 0
        for added in pm.hook.ptyframe_hydra_overrides(command=cmd, overrides=list(rest)):
            rest += list(added or [])
        rest = _prepare_argv(rest)
        overrides = overrides_of(rest)
        if overrides is not None:  # every config mistake ends here, before Hydra makes a dir
            check_overrides(cmd, overrides, _validator(cmd))
        if cmd == "simulate":
            return _hydra_run("simulate", _simulate_task(registry), rest)
        return _hydra_run("reconstruct", _reconstruct_task(registry), rest)
    except PtyframeError as exc:
        return _fail(exc, exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
