"""``ptyframe reconstruct data.path=FILE.h5 [overrides]`` (conf/reconstruct.yaml; -m multirun).

The work is ``ptyframe.runner.run``; this module is its Hydra command: the run directory,
the one-line summary, and a diverged job of a sweep recorded rather than stopping the sweep.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from ptyframe import cli
from ptyframe.errors import DivergenceError


def main(argv: list[str]) -> int:
    """Reconstruct a dataset (data.path=FILE.h5 engine=...)."""
    app = cli.current_app()

    def check(body: Any) -> None:
        validate(body, app.registry)

    return cli.run_hydra_command("reconstruct", argv, _task(app.registry), check, app)


def validate(body: Any, registry: Any = None) -> None:
    """Check the composed ``reconstruct`` config as the run will: ranges, types, and (with
    ``registry``) that the engine uses every collaborator the config sets."""
    from ptyframe.runner import typed_config

    cfg = typed_config(body)
    if registry is not None:
        from ptyframe.compose import check_fit, data_config

        check_fit(cfg, registry)
        data_config(cfg, registry)  # data.field against the physics


def _task(registry: Any) -> Any:
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
        _exit_if_follow_incomplete(result, hc)
        value = result.metrics.get("validation_error")
        return None if value is None else float(value)

    return task


def _exit_if_follow_incomplete(result: Any, hc: Any) -> None:
    """Exit with ``cli.FOLLOW_EXIT_CODES[follow_ended]`` if following ended before the scan did.

    The result is saved either way (status ``finished``); the exit code is what tells a
    beamline script that it covers only part of the scan (3: the file broke, 4: no new
    pattern and no ``scan_complete`` for ``data.follow_timeout_s``). In a multirun the sweep
    goes on and the outcome is only logged.
    """
    from hydra.types import RunMode

    ended = str(result.attrs.get("follow_ended", ""))
    code = cli.FOLLOW_EXIT_CODES.get(ended, 0)
    if not code:
        return
    n = int(result.state.positions_px.shape[0])
    where = result.out_dir or "(not written)"
    msg = f"follow ended: {ended} before scan_complete; the {n} patterns it had are in {where}"
    if hc.mode == RunMode.MULTIRUN:
        logging.getLogger("ptyframe").warning("job %s: %s", hc.job.num, msg)
        return
    print(f"ptyframe: {msg} (exit code {code})", file=sys.stderr)
    cli.flush_logs()
    sys.exit(code)
