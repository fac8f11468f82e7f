"""Name the kinds of component, the Hydra group of each, and how each is chosen.

``ptyframe plugins`` prints ``CHOOSE`` and a test runs each of its command lines.
"""

from __future__ import annotations

#: Kinds every registry knows, with the Hydra config group each one fills.
KINDS: dict[str, str] = {
    "dataset": "data",
    "simulation": "simulation",
    "phantom": "phantom",
    "probe": "probe",
    "scan": "scan",
    "propagator": "propagator",
    "forward_model": "physics",
    "loss": "loss",
    "regularizer": "regularizer",
    "optimizer": "optimizer",
    "engine": "engine",
    "prior_step": "prior",
    "denoiser": "denoiser",
    "distribution": "distribution",
    "metric": "metric",
    "callback": "callback",
    # chosen by a field of the ``data`` group (``data.reader=cxi``), not a Hydra group
    "reader": "data.reader",
}


#: How each kind is chosen on the command line (``{name}`` = the component's name):
#: ``(command, overrides, note)``.
CHOOSE: dict[str, tuple[str, str, str]] = {
    "dataset": ("reconstruct", "data={name}", " (data=file takes data.path=FILE)"),
    "reader": (
        "reconstruct",
        "data.reader={name}",
        " (with data.path=FILE; by default chosen by looking inside the file)",
    ),
    "simulation": ("simulate", "simulation={name}", ""),
    "phantom": ("simulate", "phantom={name}", ""),
    "probe": ("simulate", "probe={name}", ""),
    "scan": ("simulate", "scan={name}", ""),
    "propagator": ("reconstruct", "physics=multislice physics.propagator={name}", ""),
    "forward_model": ("reconstruct", "physics={name}", ""),
    "loss": ("reconstruct", "loss={name}", ""),
    "regularizer": (
        "reconstruct",
        "+regularizer@regularizers.{name}={name} regularizers.{name}.weight=1e-4",
        " (any key after regularizers.; several may be added)",
    ),
    "optimizer": (
        "reconstruct",
        "engine=autodiff +optimizer@engine.optimizers.object={name}",
        " (also .probe, .positions, .geometry)",
    ),
    "engine": ("reconstruct", "engine={name}", ""),
    "prior_step": ("reconstruct", "engine=pine engine.rho=0.3", " (PINE's denoising step)"),
    "denoiser": ("reconstruct", "denoiser={name}", ""),
    "distribution": ("reconstruct", "distribution={name}", " (MPI modes under mpiexec)"),
    "metric": ("reconstruct", "metrics.names=[{name}]", " (a list, e.g. [frc,nrmse,ssim])"),
    "callback": (
        "reconstruct",
        "+callback@callbacks.{name}={name}",
        " (any key after callbacks.; several may be added)",
    ),
}


def choose_hint(kind: str, name: str = "<name>") -> str:
    """Return the command line that selects component ``name`` of ``kind``."""
    default = ("reconstruct", f"{KINDS.get(kind, kind)}={{name}}", "")
    command, template, _ = CHOOSE.get(kind, default)
    return f"ptyframe {command} {template.format(name=name)}"
