"""The callbacks of every run, built from the run config's blocks, plus the ones it adds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ptyframe.callbacks.base import Callback
from ptyframe.callbacks.beamtime import BEAMTIME, beamtime_callbacks
from ptyframe.callbacks.checkpoint import CheckpointCallback
from ptyframe.callbacks.convergence import ConvergenceCallback
from ptyframe.callbacks.guard import DivergenceGuard
from ptyframe.callbacks.history import HistoryCallback
from ptyframe.callbacks.outputs import OutputsCallback
from ptyframe.callbacks.progress import ProgressCallback
from ptyframe.callbacks.signals import SignalsCallback
from ptyframe.callbacks.truth import TruthMetricsCallback
from ptyframe.errors import ConfigError

#: The always-on callbacks and the config that sets each (``ptyframe plugins`` shows it).
CORE: dict[str, str] = {
    "truth_metrics": "metrics.every, metrics.names",
    "guard": "guard.max_error_growth",
    "history": "(no settings)",
    "progress": "progress, progress_every_s",
    "checkpoint": "output.checkpoint_every, resume",
    "signals": "(no settings: SIGINT/SIGTERM)",
    "convergence": "(no settings)",
    "outputs": "output.images, output.format, output.dir",
    **BEAMTIME,
}


def core_callbacks(cfg: Any) -> list[Callback]:
    """Return the always-on callbacks configured by ``cfg``'s metrics/guard/output blocks."""
    return [
        TruthMetricsCallback(cfg.metrics),
        DivergenceGuard(cfg.guard),
        HistoryCallback(),
        ProgressCallback(bool(cfg.progress), float(cfg.progress_every_s)),
        CheckpointCallback(int(cfg.output.checkpoint_every), bool(cfg.resume)),
        SignalsCallback(),
        ConvergenceCallback(),
        OutputsCallback(cfg.output),
        *beamtime_callbacks(cfg),
    ]


def added_callbacks(configs: dict[str, Any], registry: Any, context: Any) -> list[Callback]:
    """Build the callbacks ``cfg.callbacks`` adds (registered kind ``callback``)."""
    out = []
    for key, conf in (configs or {}).items():
        name = conf if isinstance(conf, str) else _name(conf)
        if name in CORE:
            raise ConfigError(
                f"callbacks.{key}: {name} is always on; set it with {CORE[name]} instead"
            )
        out.append(registry.build("callback", conf, context))
    return out


def all_callbacks(
    cfg: Any, registry: Any, context: Any, extra: Sequence[Callback] = ()
) -> list[Callback]:
    """Return the core callbacks, the configured ones and ``extra`` (from Python callers)."""
    return [*core_callbacks(cfg), *added_callbacks(cfg.callbacks, registry, context), *extra]


def _name(conf: Any) -> str:
    try:
        return str(conf["name"])
    except (KeyError, TypeError):
        return str(getattr(conf, "name", ""))
