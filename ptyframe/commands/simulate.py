"""``ptyframe simulate out=FILE.h5 [overrides]``: a dataset with ground truth (conf/simulate.yaml).

The work is ``ptyframe.simulation.command.run_simulate``; this module is its Hydra command.
"""

from __future__ import annotations

import sys
from typing import Any

from ptyframe import cli
from ptyframe.errors import ConfigError


def main(argv: list[str]) -> int:
    """Simulate a dataset with ground truth (out=FILE.h5)."""
    app = cli.current_app()

    def task(cfg: Any) -> None:
        from ptyframe.simulation.command import run_simulate

        path = run_simulate(cfg, app.registry)
        print(f"ptyframe: wrote {path}", file=sys.stderr)

    return cli.run_hydra_command("simulate", argv, task, validate, app)


def validate(body: Any) -> None:
    """Check the composed ``simulate`` config: an output file is given, every value typed."""
    from omegaconf import OmegaConf

    if OmegaConf.is_missing(body, "out"):
        raise ConfigError("no output file: give `out=FILE.h5`")
    OmegaConf.to_object(body)
