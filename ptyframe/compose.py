"""Compose a run: the one place that reads the run config to build an engine.

``build_engine(cfg, registry, context)`` builds the engine config ``cfg.engine``, then the
collaborators the engine's constructor asks for (its parameters after the config) from the
run config, and passes them::

    physics       <- cfg.physics        (a forward model; default farfield)
    loss          <- cfg.loss           (default lsq)
    regularizers  <- cfg.regularizers   (a list, in the order of their keys)
    prior         <- the engine config's DenoiseSchedule (rho, denoise_every, denoise_start)
                     and cfg.denoiser (default cpl_auto): the registered prior_step ``denoise``,
                     built only when rho > 0 (rho = 0: None, the engine exactly)
    registry      <- the registry (to look up optimizers and the like by name)

A run-config field the chosen engine does not take is a ``ConfigError`` naming it, so
``engine=epie physics=multislice`` fails instead of silently reconstructing in the far
field. Each group's default in ``conf/reconstruct.yaml`` (physics=farfield, loss=lsq,
denoiser=cpl_auto with their default options, no regularizers) is what every run carries and
is not an error.

``build_distribution`` likewise passes ``run`` (the typed run config) to a distribution
whose constructor asks for it (the MPI object modes check that the engine can work on a
window of the object).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ptyframe.engines.base import Engine
from ptyframe.engines.config import SchedulesPrior
from ptyframe.engines.corrections.hooks import check_capabilities
from ptyframe.errors import ConfigError
from ptyframe.registry import BuildContext, Component, Registry

#: The run-config field, registry kind and ``conf/reconstruct.yaml`` default of each
#: collaborator built from a group (a test checks these against the YAML defaults).
GROUP_DEFAULTS: dict[str, tuple[str, str]] = {
    "physics": ("forward_model", "farfield"),
    "loss": ("loss", "lsq"),
    "denoiser": ("denoiser", "cpl_auto"),
}

#: The engine constructor parameter that uses each run-config field.
USED_BY = {"physics": "physics", "loss": "loss", "regularizers": "regularizers"}

#: What each field is, for the error message.
WHAT = {
    "physics": "a forward model",
    "loss": "a loss",
    "regularizers": "regularizers",
    "denoiser": "a prior (the denoising step, with engine.rho > 0)",
}


def build_engine(cfg: Any, registry: Registry, context: BuildContext | None = None) -> Engine:
    """Build ``cfg.engine`` with the collaborators its constructor takes (module docstring).

    ``cfg`` is a ``ptyframe.config.ReconstructConfig`` (or anything with its ``engine``,
    ``physics``, ``loss``, ``regularizers`` and ``denoiser`` attributes).
    """
    context = context or BuildContext(registry)
    engine_cfg, wants = check_fit(cfg, registry)
    offered: dict[str, Any] = {}
    if "physics" in wants:
        offered["physics"] = registry.build("forward_model", _group(cfg, "physics"), context)
    if "loss" in wants:
        offered["loss"] = registry.build("loss", _group(cfg, "loss"), context)
    if "regularizers" in wants:
        regs = getattr(cfg, "regularizers", None) or {}
        offered["regularizers"] = [registry.build("regularizer", c, context) for c in regs.values()]
    if "prior" in wants:
        offered["prior"] = build_prior(engine_cfg, _group(cfg, "denoiser"), registry, context)
    if "registry" in wants:
        offered["registry"] = registry
    return registry.build("engine", engine_cfg, context, **offered)


#: Detector propagators that leave a real-space image (near field) rather than a pattern.
NEAR_FIELD_DETECTORS = ("fresnel", "angular_spectrum")


def physics_field(cfg: Any, registry: Registry) -> str:
    """Return ``near`` if the engine's physics propagates to a near-field detector, else ``far``.

    Read from the physics config's ``detector`` (``physics=nearfield``,
    ``multidistance_holography``, ``multislice physics.detector=fresnel``); an engine that takes
    no physics reconstructs in the far field.
    """
    _, wants = check_fit(cfg, registry)
    if "physics" not in wants:
        return "far"
    detector = getattr(_group(cfg, "physics"), "detector", "fraunhofer")
    return "near" if str(detector) in NEAR_FIELD_DETECTORS else "far"


def data_config(cfg: Any, registry: Registry) -> Any:
    """Return ``cfg.data`` with ``data.field=auto`` set to what the physics needs.

    A ``data.field`` forced against the physics is a ``ConfigError`` (the object pixel of a
    near-field image and of a far-field pattern differ by orders of magnitude).
    """
    data: Any = getattr(cfg, "data", None)
    field = getattr(data, "field", None)
    if field is None:
        return data
    need = physics_field(cfg, registry)
    if str(field) == "auto":
        if dataclasses.is_dataclass(data) and not isinstance(data, type):
            return dataclasses.replace(data, field=need)
        data.field = need
        return data
    if str(field) != need:
        fix = (
            "+imaging=nearfield (plane wave) or +imaging=nearfield_conebeam"
            if field == "near"
            else "+imaging=farfield"
        )
        engine_cfg, wants = check_fit(cfg, registry)
        physics = _group(cfg, "physics")
        who = (
            f"physics={physics if isinstance(physics, str) else getattr(physics, 'name', '?')}"
            if "physics" in wants
            else f"engine={getattr(engine_cfg, 'name', '?')}"
        )
        raise ConfigError(
            f"data.field={field} but {who} reconstructs in the {need} field; choose a "
            f"{field}-field physics ({fix}) or drop data.field"
        )
    return data


def takes(comp: Component, param: str) -> bool:
    """Return whether engine ``comp`` is built with collaborator ``param``.

    Its constructor must name ``param``; for ``prior`` its config must also carry ``rho``
    (``PieEngine`` takes a prior, but only PINE's config schedules one, not ePIE's).
    """
    if param not in comp.wants:
        return False
    if param == "prior":
        return any(f.name == "rho" for f in dataclasses.fields(comp.config_cls))
    return True


def build_prior(
    engine_cfg: Any, denoiser_cfg: Any, registry: Registry, context: BuildContext
) -> Any:
    """Return the engine's denoising step with the run's denoiser, or None when rho = 0.

    The step's config is ``engine_cfg.prior_config()`` (``DenoiseSchedule``); a config with
    only ``rho`` gets the step every epoch.
    """
    if isinstance(engine_cfg, SchedulesPrior):
        step_cfg = engine_cfg.prior_config()
    elif hasattr(engine_cfg, "rho"):
        step_cfg = registry.config("prior_step", {"name": "denoise", "rho": engine_cfg.rho})
    else:
        raise ConfigError(
            f"engine {engine_cfg.name} takes a prior but its config has no `rho` field; give "
            "its config class the fields of ptyframe.engines.config.DenoiseSchedule"
        )
    if float(step_cfg.rho) == 0.0:
        return None
    denoiser = registry.build("denoiser", denoiser_cfg, context)
    return registry.build("prior_step", step_cfg, context, denoiser=denoiser)


def check_fit(cfg: Any, registry: Registry) -> tuple[Any, set[str]]:
    """Return ``cfg``'s typed engine config and the collaborators it takes; raise
    ``ConfigError`` if ``cfg`` sets a field that engine does not use (nothing is built).

    ``build_engine`` starts with it; the command line runs it alone before any directory is
    made (``ptyframe.commands.reconstruct.validate``).
    """
    engine_cfg = registry.config("engine", getattr(cfg, "engine", None) or "epie")
    comp = registry.get("engine", engine_cfg.name)
    wants = {p for p in comp.wants if takes(comp, p)}
    check_unused(cfg, registry, engine_cfg.name, wants)
    factory = comp.factory
    if isinstance(factory, type) and issubclass(factory, Engine):  # the corrections it declares
        check_capabilities(engine_cfg.name, factory.capabilities, engine_cfg)
    return engine_cfg, wants


def check_unused(cfg: Any, registry: Registry, engine: str, wants: set[str]) -> None:
    """Raise ``ConfigError`` for a run-config field that engine ``engine`` would not use.

    ``physics``, ``loss``: only their defaults unless the engine takes them;
    ``regularizers``: none unless taken; ``denoiser``: only its default unless the engine
    takes a ``prior`` (then any, even at ``rho = 0``: a sweep over rho keeps one command line).
    """
    for key, param in (*USED_BY.items(), ("denoiser", "prior")):
        if param in wants or _is_default(cfg, key, registry):
            continue
        takers = [c.name for c in registry if c.kind == "engine" and takes(c, param)]
        only = f"only {', '.join(takers)} take{'s' if len(takers) == 1 else ''}"
        raise ConfigError(
            f"{_spelling(cfg, key)} is not used by engine {engine} ({only} {WHAT[key]}); remove it"
        )


def build_distribution(cfg: Any, registry: Registry, context: BuildContext) -> Any:
    """Build ``cfg.distribution`` (default single), giving it ``run=cfg`` if it asks for it."""
    dist_cfg = registry.config("distribution", getattr(cfg, "distribution", None) or "single")
    comp = registry.get("distribution", dist_cfg.name)
    offered = {"run": cfg} if "run" in comp.wants else {}
    dist = registry.build("distribution", dist_cfg, context, **offered)
    device = str(getattr(context, "device", "cpu"))
    if int(getattr(dist, "size", 1)) > 1 and device != "cpu":
        raise ConfigError(
            f"distribution={dist_cfg.name} on {dist.size} processes reduces CPU tensors, but "
            f"device={device}: GPU-aware MPI is not wired. Use device=cpu under mpiexec, or "
            "one process on the GPU"
        )
    return dist


def _group(cfg: Any, key: str) -> Any:
    """Return the run's config of group ``key``, or the group's default name when unset."""
    value = getattr(cfg, key, None)
    return value if value else GROUP_DEFAULTS[key][1]


def _is_default(cfg: Any, key: str, registry: Registry) -> bool:
    """Return whether the run leaves field ``key`` at its default (unset counts as default)."""
    value = getattr(cfg, key, None)
    if not value:
        return True
    if key == "regularizers":
        return False
    kind, default = GROUP_DEFAULTS[key]
    typed = registry.config(kind, value)
    return typed == registry.config(kind, default)


def _spelling(cfg: Any, key: str) -> str:
    """Return how the user would have written field ``key`` (``physics=multislice``)."""
    value = getattr(cfg, key, None)
    if key == "regularizers":
        return "regularizers." + ",".join(sorted(value or {}))
    name = value if isinstance(value, str) else getattr(value, "name", None)
    if name is None and isinstance(value, dict):
        name = value.get("name")
    default = GROUP_DEFAULTS[key][1]
    if name == default:
        return f"{key}={name} with options changed from their defaults"
    return f"{key}={name}"
