"""Run the ``ptyframe`` console script: load plugins, then hand the command to its plugin.

Every subcommand comes through the ``ptyframe_commands`` hook, the core's own too::

    ptyframe simulate out=demo.h5 [overrides]       # conf/simulate.yaml    (ptyframe.commands)
    ptyframe reconstruct data.path=demo.h5 [...]    # conf/reconstruct.yaml (-m for multirun)
    ptyframe plugins                                # registered components and their fields
    ptyframe halfset data.path=demo.h5 [...]        # half-set FRC resolution
    ptyframe report DIR                             # ptyframe.report
    ptyframe train-denoiser ...                     # ptyframe-lightning

This module holds what the Hydra commands share: Hydra finds ``conf/`` (shipped as
``pkg://ptyframe_conf``) and every plugin's config directory through a SearchPathPlugin
registered here in code (namespace-package discovery of ``hydra_plugins`` is unreliable under
editable installs). Every registered component's config dataclass is put in Hydra's
ConfigStore, so ``engine=rpie engine.alpha=0.2`` is type-checked. ``run_hydra_command`` runs
one Hydra command (overrides checked before Hydra makes a directory; the job log is
``cli.log``, named after this module). Errors that come from the user's input print one line
and exit with code 2; the other exit codes are ``EXIT_CODES``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ptyframe.errors import PluginError, PtyframeError
from ptyframe.overrides import check_overrides, overrides_of

SEARCH_PATHS: list[str] = []
#: The entry point of the core's own commands (``ptyframe.commands.plugin``).
CORE_COMMANDS = "ptyframe.commands"

#: A subcommand: ``main(argv) -> exit code``; its docstring's first line is its help.
Command = Callable[[list[str]], int]

#: The console script's exit codes (the manual's guide/exit-codes); 1 is an uncaught bug.
EXIT_BAD_INPUT = 2  # PtyframeError.exit_code: a mistake in the input, or a diverged run
EXIT_FOLLOW_ERROR = 3  # data.follow: the followed file broke; the patterns before it are saved
EXIT_FOLLOW_TIMEOUT = 4  # data.follow: data.follow_timeout_s passed before scan_complete; saved
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT): the state is saved, resume=true continues
EXIT_TERMINATED = 143  # SIGTERM (128 + 15), a batch system's time limit: saved as for Ctrl-C
EXIT_CODES = {
    0: "finished (a followed scan: scan_complete was set)",
    EXIT_BAD_INPUT: "bad input (nothing run), or a diverged run (last good state saved)",
    EXIT_FOLLOW_ERROR: "follow ended on a broken file (follow_ended=error); result saved",
    EXIT_FOLLOW_TIMEOUT: "follow ended on data.follow_timeout_s (follow_ended=timeout); saved",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); state and checkpoint saved",
    EXIT_TERMINATED: "terminated (SIGTERM); state and checkpoint saved",
}
#: ``follow_ended`` of a run that followed a scan -> its exit code (absent: 0)
FOLLOW_EXIT_CODES = {"error": EXIT_FOLLOW_ERROR, "timeout": EXIT_FOLLOW_TIMEOUT}


def fail(exc: BaseException | str, code: int = 2) -> int:
    """Print ``ptyframe: error: EXC`` on stderr and return ``code``."""
    print(f"ptyframe: error: {exc}", file=sys.stderr)
    return code


def flush_logs() -> None:
    """Flush every logging handler (the job log ``cli.log`` too) and the standard streams."""
    known = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    loggers = [lg for lg in known if isinstance(lg, logging.Logger)]  # not the placeholders
    for lg in loggers:
        for h in list(lg.handlers):
            try:
                h.flush()
            except (OSError, ValueError):  # a closed stream: nothing left to flush
                pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


@dataclass
class App:
    """The loaded plugins: plugin manager, their origins, the registry, Hydra search paths."""

    pm: Any
    infos: dict[str, Any]
    registry: Any
    searchpaths: list[str] = field(default_factory=list)

    def commands(self) -> dict[str, Command]:
        """Return every plugin's subcommands in load order; a name offered twice is an error."""
        out: dict[str, Command] = {}
        owner: dict[str, str] = {}
        for impl in self.pm.hook.ptyframe_commands.get_hookimpls():
            for name, fn in (impl.function() or {}).items():
                if name in out:
                    raise PluginError(
                        f"two plugins offer the command {name!r}: {owner[name]} and "
                        f"{impl.plugin_name}; rename one, or skip a plugin with "
                        f"PTYFRAME_DISABLE_PLUGINS={impl.plugin_name}"
                    )
                out[name], owner[name] = fn, impl.plugin_name
        return out


_CURRENT: App | None = None


def load_app() -> App:
    """Load every enabled plugin and build the registry from them."""
    from ptyframe.plugins import build_registry, config_searchpaths, make_plugin_manager

    pm, infos = make_plugin_manager()
    return App(pm, infos, build_registry(pm, infos), config_searchpaths(pm))


def current_app() -> App:
    """Return the plugins the running ``ptyframe`` command loaded (a fresh load outside one)."""
    return _CURRENT if _CURRENT is not None else load_app()


def setup_hydra(registry: Any, searchpaths: list[str]) -> None:
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


def config_of(registry: Any) -> Callable[[str, str], type | None]:
    """Return ``(kind, name) -> config class`` of ``registry``'s components (None if unknown)."""

    def config_of(kind: str, name: str) -> type | None:
        try:
            return registry.get(kind, name).config_cls
        except PtyframeError:  # an unknown name is reported when the config is built
            return None

    return config_of


def run_hydra_command(
    config_name: str,
    argv: list[str],
    task: Callable[[Any], Any],
    validate: Callable[[Any], None],
    app: App | None = None,
) -> int:
    """Run the Hydra command ``config_name`` (``conf/<config_name>.yaml``) on ``argv``.

    Plugins' ``ptyframe_hydra_overrides`` are added, ``output.dir`` becomes the run directory
    (``_prepare_argv``), every override is checked with ``validate`` on the composed config
    before Hydra makes a directory, then ``task(cfg)`` runs inside ``@hydra.main``.
    """
    app = app or current_app()
    setup_hydra(app.registry, app.searchpaths)
    rest = list(argv)
    for added in app.pm.hook.ptyframe_hydra_overrides(command=config_name, overrides=list(rest)):
        rest += list(added or [])
    rest = _prepare_argv(rest)
    overrides = overrides_of(rest)
    if overrides is not None:  # every config mistake ends here, before Hydra makes a dir
        check_overrides(config_name, overrides, validate, config_of(app.registry))
    return _hydra_run(config_name, task, rest, argv)


def _hydra_run(
    config_name: str, task: Callable[[Any], Any], argv: list[str], user_argv: list[str]
) -> int:
    import hydra

    @hydra.main(version_base="1.3", config_path=None, config_name=config_name)
    def _main(cfg: Any) -> Any:
        try:
            return task(cfg)  # the objective of a sweeper (Optuna): commands.reconstruct
        except PtyframeError as exc:
            _remove_if_empty_run_dir()
            sys.exit(fail(exc, exc.exit_code))
        except KeyboardInterrupt as exc:
            sys.exit(report_interrupted(exc, config_name, user_argv))

    saved = sys.argv
    sys.argv = [f"ptyframe {config_name}", *argv]
    try:
        _main()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:
        sys.argv = saved
    return 0


def report_interrupted(exc: BaseException, config_name: str, argv: list[str]) -> int:
    """Log (so into ``cli.log``) and print how the run was interrupted; return its exit code
    (``128 + signal``: 130 for Ctrl-C, 143 for SIGTERM; ``signals.exit_code``).

    The line says the status, the epoch reached, the files the state is saved in and the
    command that resumes the run. Signals are ignored while it is written and the log
    flushed, so a second Ctrl-C cannot cut it off. Of several MPI ranks only rank 0 reports
    (they share ``cli.log``).
    """
    import signal
    import threading

    from ptyframe.callbacks.signals import exit_code, interruption_of

    info = interruption_of(exc)
    if info is not None and not info.root:
        flush_logs()
        return exit_code(exc)

    held: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        held = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        msg = interrupted_message(exc, config_name, argv, info)
        logging.getLogger("ptyframe").warning("%s", msg)
        print(f"ptyframe: {msg}", file=sys.stderr)
        flush_logs()
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)
    return exit_code(exc)


def interrupted_message(
    exc: BaseException, config_name: str, argv: list[str], info: Any = None
) -> str:
    """Return the ``interrupted ...`` line of a run stopped by ``exc`` (Ctrl-C, SIGTERM).

    ``info``: the ``Interruption`` of ``exc`` when the caller has it (else looked up).
    """
    import shlex

    from ptyframe.callbacks.signals import interruption_of

    info = info if info is not None else interruption_of(exc)
    if info is None:
        return "interrupted before any epoch ran: nothing saved; run the command again"
    msg = f"interrupted at epoch {info.epochs_done} of {info.epochs} (status interrupted)"
    files = [p.resolve() for p in info.saved_files()]
    if not files:
        return msg + ": nothing saved by this process"
    msg += f": the state is saved in {', '.join(str(p) for p in files)}"
    if not info.resumable:
        return msg + "; a followed scan (data.follow=true) cannot be resumed"
    if not any(p.name == "checkpoint.h5" for p in files):
        return msg
    if _multirun(argv):
        return msg + "; rerun the sweep (same hydra.sweep.dir, output.skip_done=true) to finish it"
    drop = ("output.dir", "hydra.run.dir", "resume", "hydra.output_subdir")
    kept = [a for a in argv if a.split("=", 1)[0].lstrip("+") not in drop]
    out = info.out_dir.resolve()
    cmd = shlex.join(["ptyframe", config_name, *kept, f"output.dir={out}", "resume=true"])
    launch = f" (launched on {info.ranks} MPI ranks, as before)" if info.ranks > 1 else ""
    return msg + f"; continue with: {cmd}{launch}"


#: What Hydra itself puts into a run directory; a directory holding only these is empty.
_HYDRA_ONLY = {".hydra"}


def _drop_file_handlers(folder: Any) -> None:
    """Close and detach every logging file handler writing below ``folder`` (Hydra's job log)."""
    from pathlib import Path

    root = Path(folder).resolve()
    known = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    loggers = [lg for lg in known if isinstance(lg, logging.Logger)]  # not the placeholders
    for lg in loggers:
        for h in list(lg.handlers):
            path = getattr(h, "baseFilename", None)
            if path and root in Path(path).resolve().parents:
                h.close()
                lg.removeHandler(h)


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
    _drop_file_handlers(out)  # a later run in this process must not log into it
    shutil.rmtree(out, ignore_errors=True)
    cwd = Path.cwd().resolve()
    parent = out.resolve().parent
    for _ in range(2):  # outputs/DATE/ and outputs/ when they are left empty
        if parent == cwd or cwd not in parent.parents or any(parent.iterdir()):
            break
        parent.rmdir()
        parent = parent.parent


def _multirun(argv: list[str]) -> bool:
    """Return whether ``argv`` asks Hydra for a multirun (``-m``, ``--multirun``)."""
    return any(a in ("-m", "--multirun") for a in argv)


def _prepare_argv(argv: list[str]) -> list[str]:
    """Return ``argv`` with the run directory made the one the user named.

    ``output.dir=X`` (single run) also sets ``hydra.run.dir=X``, so ``.hydra/`` and the log
    live beside ``recon.h5`` and ``resume=true output.dir=X`` finds the run again. A resumed
    run keeps the first launch's ``.hydra/`` and writes its own under
    ``.hydra/resumed-DATE-TIME``; the job log is appended to.
    """
    multirun = _multirun(argv)
    keys = {a.split("=", 1)[0].lstrip("+"): a.split("=", 1)[1] for a in argv if "=" in a}
    out = list(argv)
    if "output.dir" in keys and "hydra.run.dir" not in keys and not multirun:
        if keys["output.dir"] not in ("", "null", "None"):
            out.append(f"hydra.run.dir={keys['output.dir']}")
    if keys.get("resume", "").lower() == "true" and "hydra.output_subdir" not in keys:
        import time

        out.append(f"hydra.output_subdir=.hydra/resumed-{time.strftime('%Y%m%d-%H%M%S')}")
    return out


def _help(commands: dict[str, Command]) -> str:
    lines = ["usage: ptyframe COMMAND [hydra overrides]", "", "commands:"]
    for name, fn in commands.items():
        doc = (getattr(fn, "__doc__", "") or "").strip().split("\n")[0]
        lines.append(f"  {name:14s} {doc}")
    lines += ["", "`ptyframe COMMAND --help` shows the command's config and groups."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ptyframe`` console script; return the exit code."""
    global _CURRENT
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        app = load_app()
        commands = app.commands()
    except PtyframeError as exc:
        return fail(exc, exc.exit_code)
    from ptyframe.plugins import set_default_registry

    set_default_registry(app.registry)  # share the registry with components that look it up
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_help(commands))
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in commands:
        hint = ""
        if CORE_COMMANDS not in app.infos:
            hint = (
                f"; the core's commands come from the entry point {CORE_COMMANDS!r}, which this "
                "install lacks: reinstall ptyframe (`make install` or `pip install -e .`)"
            )
        return fail(f"unknown command {cmd!r}; commands are: {', '.join(commands)}{hint}")
    _CURRENT = app
    try:
        return int(commands[cmd](rest) or 0)
    except PtyframeError as exc:
        return fail(exc, exc.exit_code)
    finally:
        _CURRENT = None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
