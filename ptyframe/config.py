"""Define the schema of a ``ptyframe reconstruct`` run (component configs live beside them).

Hydra composes ``conf/reconstruct.yaml`` on top of ``ReconstructConfig`` (stored in the
ConfigStore as ``reconstruct_schema``), so a misspelled top-level field is an error before any
work starts; component groups (``engine``, ``data``, ...) are checked against the config class
of the selected component by ``Registry.config`` when the runner builds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ptyframe.errors import ConfigError
from ptyframe.initial import InitConfig


@dataclass
class MetricsConfig:
    """Ground-truth metrics (only when the dataset has ``/truth``)."""

    #: Compute them every ``every`` epochs (and always after the last); 0 = only at the end.
    every: int = 10
    names: list[str] = field(default_factory=lambda: ["frc", "nrmse"])

    def __post_init__(self) -> None:
        if int(self.every) < 0:
            raise ConfigError(f"metrics.every = {self.every} must be >= 0")


@dataclass
class OutputConfig:
    """What a run writes into its directory (the Hydra run directory by default)."""

    #: Output directory; None = the current directory (Hydra's run directory).
    dir: str | None = None
    images: bool = True
    #: Write ``checkpoint.h5`` every this many epochs (0 = never; interrupts still write one).
    checkpoint_every: int = 10
    overwrite: bool = False
    #: Skip the run if the output directory already holds a finished ``recon.h5`` of the same
    #: config (continues an interrupted multirun sweep without redoing finished runs).
    skip_done: bool = False
    #: ``h5``: ``recon.h5`` only; ``cxi``: also ``recon.cxi`` with CXI conventions.
    format: str = "h5"
    #: Following a growing file (``data.follow``): refresh the images and a ``recon.h5``
    #: (status ``running``) at least this often, in seconds.
    live_every_s: float = 10.0

    def __post_init__(self) -> None:
        if not float(self.live_every_s) > 0:
            raise ConfigError(f"output.live_every_s = {self.live_every_s} must be > 0")
        if int(self.checkpoint_every) < 0:
            raise ConfigError(f"output.checkpoint_every = {self.checkpoint_every} must be >= 0")
        if self.format not in ("h5", "cxi"):
            raise ConfigError(f"output.format = {self.format!r}; use h5 or cxi")


@dataclass
class GuardConfig:
    """Divergence guard: stop when the state turns non-finite or the error explodes."""

    #: Stop when the data error exceeds this multiple of the lowest error seen so far.
    max_error_growth: float = 10.0

    def __post_init__(self) -> None:
        if not float(self.max_error_growth) > 1.0:
            raise ConfigError(f"guard.max_error_growth = {self.max_error_growth} must be > 1")


@dataclass
class ReconstructConfig:
    """One reconstruction run. Component fields hold that component's config (``name`` first)."""

    data: Any = None
    engine: Any = None
    physics: Any = None
    loss: Any = None
    regularizers: dict[str, Any] = field(default_factory=dict)
    denoiser: Any = None
    distribution: Any = None
    init: InitConfig = field(default_factory=InitConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    #: Callbacks added to the always-on ones (``+callback@callbacks.KEY=NAME``), by key.
    callbacks: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "cpu"
    #: Keep the measured patterns in host memory and send each minibatch (or position) to
    #: ``device`` when it is used, through page-locked memory: for scans larger than the
    #: GPU's memory. Only the unknowns and one batch live on the device.
    patterns_on_host: bool = False
    dtype: str = "complex64"
    #: Torch CPU threads; 0 = automatic (1 for per-position engines, else all cores).
    threads: int = 0
    #: Show progress: a bar on a terminal, else a plain log line every ``progress_every_s``.
    progress: bool = True
    progress_every_s: float = 5.0
    #: Continue from ``checkpoint.h5`` in the output directory.
    resume: bool = False
    #: Same input, same bits: nothing chosen by timing changes the arithmetic (FFTW plans
    #: by estimate, ``ptyframe.engines.pie_fft``). ``false`` opts in to timed FFTW plans
    #: (FFTW_MEASURE), whose bits may differ between two runs and between a run and its
    #: resume (docs/guide/determinism.md). Recorded in ``recon.h5``.
    deterministic: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in ("complex64", "complex128"):
            raise ConfigError(f"dtype = {self.dtype!r}; use complex64 or complex128")
        if not float(self.progress_every_s) >= 0.0:
            raise ConfigError(f"progress_every_s = {self.progress_every_s} must be >= 0")
        if int(self.threads) < 0:
            raise ConfigError(f"threads = {self.threads} must be >= 0 (0 = automatic)")
        if not (self.device == "cpu" or self.device.startswith("cuda") or self.device == "auto"):
            raise ConfigError(f"device = {self.device!r}; use cpu, cuda, cuda:N or auto")
        data = self.data
        follow = data.get("follow") if isinstance(data, Mapping) else getattr(data, "follow", 0)
        if self.resume and follow:  # before the followed file is waited for and read
            raise ConfigError("data.follow=true cannot resume a run; start it again")
