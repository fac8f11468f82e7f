"""Compose a run exactly as ``ptyframe reconstruct <overrides>`` does, and read its history."""

from __future__ import annotations

from typing import Any

#: The thread-count variables of torch, BLAS and numba, each set to one in a child's
#: environment: a timed child runs on one thread, whatever the parent was given.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
ONE_THREAD = dict.fromkeys(THREAD_VARS, "1")


def compose(overrides: list[str]) -> tuple[Any, Any]:
    """Return ``(cfg, registry)`` for ``ptyframe reconstruct <overrides>``."""
    from hydra import compose as hydra_compose
    from hydra import initialize
    from hydra.core.global_hydra import GlobalHydra

    from ptyframe import cli
    from ptyframe.plugins import build_registry, config_searchpaths, make_plugin_manager

    pm, infos = make_plugin_manager()
    registry = build_registry(pm, infos)
    cli.setup_hydra(registry, config_searchpaths(pm))
    GlobalHydra.instance().clear()
    with initialize(version_base="1.3", config_path=None):
        cfg = hydra_compose("reconstruct", overrides=overrides)
    GlobalHydra.instance().clear()
    return cfg, registry


def pick(cols: dict[str, list[float]], key: str, epoch: int) -> float:
    """Return column ``key`` of a run's history after ``epoch`` epochs (NaN before)."""
    vals = cols.get(key, [])
    return float(vals[epoch - 1]) if len(vals) >= epoch else float("nan")
