"""Read the patterns of a run from a file (any reader): the ``data=file`` dataset source.

Dataset sources are ``dataset`` components, so ``data=file data.path=f.h5`` and
``data=simulated`` (``ptyframe.simulation.source``) are Hydra choices and
``registry.build("dataset", cfg)`` returns a ``PtychoDataset``. A file is read by the
``reader`` component ``data.reader`` names (``auto``: chosen from the file's contents, see
``ptyframe.data.reader``), then the detector options below are applied
(``ptyframe.data.preprocess``, ``ptyframe.data.scanfile``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ptyframe.data.conebeam import FIELDS
from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.holdout import TileSubset, check_fraction, split_validation
from ptyframe.errors import ConfigError
from ptyframe.registry import BuildContext


@dataclass
class FileDataConfig:
    """A data file: data-exchange, CXI, NXcxi_ptycho, PtyLab, or a plugin's layout."""

    name: str = "file"
    path: str = "???"
    #: Reader component (``ptyframe plugins`` lists them); ``auto`` looks inside the file.
    reader: str = "auto"
    #: Detector-frame orientation, ptypy code 0-7 (see ``ptyframe.data.preprocess``) applied
    #: after the file's own, or ``auto``: try them with a few ePIE sweeps, keep the best.
    orientation: str = "0"
    #: ePIE sweeps and tiles per candidate of ``orientation=auto``.
    orientation_epochs: int = 10
    orientation_tiles: int = 64
    #: Bad-pixel mask, nonzero = masked (unmeasured): FILE.npy, FILE.h5:/dataset, or
    #: /dataset inside the data file; one value per detector pixel as stored.
    mask: str | None = None
    #: Dark / background frame (or a stack, averaged) to subtract; same forms as ``mask``.
    dark: str | None = None
    #: Counts at or above this value mark a pixel unmeasured in that frame (saturated).
    saturation: float | None = None
    #: Cut a crop x crop window centred on the mean pattern's centre (detector pixels).
    crop: int | None = None
    #: Sum bin x bin detector pixels (after the crop).
    bin: int = 1
    #: Keep every ``decimate``-th tile along the scan (1 = all); lowers the overlap.
    decimate: int = 1
    #: Use only the first ``max_tiles`` tiles after decimation (None = all).
    max_tiles: int | None = None
    #: Check every value for NaN/Inf on open (reads the whole file once).
    check_values: bool = True
    #: Hold this fraction of the patterns (random, seeded by the run's seed) out of every
    #: update and record their data error as ``validation_error`` (``ptyframe.data.holdout``).
    validation_fraction: float = 0.0
    #: Follow a file another process is still writing (SWMR; ``ptyframe.data.follow``): new
    #: patterns join the run; after ``scan_complete`` the engine does ``epochs`` more sweeps.
    follow: bool = False
    #: Following: end the run (saving it) after this long without a new pattern.
    follow_timeout_s: float = 60.0
    #: The object-pixel rule: ``far`` (``lambda z / (M p)``), ``near`` (the detector pixel,
    #: over the magnification of a cone beam), or ``auto``: what the run's physics is
    #: (``ptyframe.data.conebeam``).
    field: str = "auto"
    #: Near field with a beam diverging from a focus this far upstream of the sample (``z1``,
    #: metres): Fresnel scaling with the detector distance ``z2`` of the file.
    focus_to_sample_m: float | None = None
    #: Test the frames against the field they are read in: a far-field pattern's bright
    #: centre read as near field, a hologram read as far field, a pixel the holograms' shifts
    #: contradict (``ptyframe.data.fieldcheck``).
    check_field: bool = True
    #: Read the patterns from the file block by block while the engine runs, holding two
    #: blocks (``ptyframe.data.stream``): true, false, or auto (stream only when the run
    #: would not fit in the memory available, ``ptyframe.data.memory``).
    stream: Any = "auto"
    #: Patterns per block of consecutive tiles (null: one block in memory; streamed,
    #: ``ptyframe.data.memory.choose_block_patterns``). The visiting
    #: order keeps blocks in scan order, so an in-memory run given a streamed run's block size
    #: visits in the same order (the same bits).
    block_patterns: int | None = None

    def __post_init__(self) -> None:
        self.stream = stream_mode(self.stream)
        if self.block_patterns is not None and int(self.block_patterns) < 1:
            raise ConfigError(f"data.block_patterns = {self.block_patterns} must be >= 1 or null")
        check_fraction(self.validation_fraction)
        if self.follow and float(self.validation_fraction) > 0:
            raise ConfigError(
                "data.follow=true cannot hold patterns out yet: set data.validation_fraction=0"
            )
        if not float(self.follow_timeout_s) > 0:
            raise ConfigError(f"data.follow_timeout_s = {self.follow_timeout_s} must be > 0")
        if int(self.decimate) < 1:
            raise ConfigError(f"data.decimate = {self.decimate} must be >= 1")
        if self.max_tiles is not None and int(self.max_tiles) < 1:
            raise ConfigError(f"data.max_tiles = {self.max_tiles} must be >= 1 or null")
        if str(self.orientation) != "auto" and str(self.orientation) not in [
            str(k) for k in range(8)
        ]:
            raise ConfigError(
                f"data.orientation = {self.orientation!r}; use 0-7 (ptypy codes: 1 flip "
                "columns, 2 flip rows, 4 transpose, ...) or auto"
            )
        if int(self.bin) < 1:
            raise ConfigError(f"data.bin = {self.bin} must be >= 1")
        if self.crop is not None and int(self.crop) < 4:
            raise ConfigError(f"data.crop = {self.crop} must be >= 4 pixels or null")
        if str(self.field) not in FIELDS:
            raise ConfigError(f"data.field = {self.field!r}; use one of {', '.join(FIELDS)}")
        if self.focus_to_sample_m is not None and not float(self.focus_to_sample_m) > 0:
            raise ConfigError(
                f"data.focus_to_sample_m = {self.focus_to_sample_m} must be > 0 (metres from "
                "the focus to the sample) or null"
            )
        if int(self.orientation_epochs) < 1 or int(self.orientation_tiles) < 4:
            raise ConfigError("data.orientation_epochs must be >= 1 and orientation_tiles >= 4")


def resolved_field(config: FileDataConfig) -> str:
    """Return ``far`` or ``near``: ``data.field``, or for ``auto`` (no physics has set it) near
    exactly when ``data.focus_to_sample_m`` is given."""
    field = str(config.field)
    if field == "auto":
        return "near" if config.focus_to_sample_m is not None else "far"
    return field


def stream_mode(value: Any) -> str:
    """Return ``data.stream`` as ``"true"``, ``"false"`` or ``"auto"`` (raise if neither)."""
    text = str(value).strip().lower()
    if text in ("true", "false", "auto"):
        return text
    raise ConfigError(f"data.stream = {value!r}; use true, false or auto")


def build_file_dataset(config: FileDataConfig, context: BuildContext) -> PtychoDataset:
    """Open and validate the file; apply decimation and the tile limit."""
    if config.path in ("???", "", None):
        raise ConfigError(
            "no data file given. Pass one with `data.path=FILE.h5` "
            "(make a demo file with `ptyframe simulate out=demo.h5`)"
        )
    if config.follow:
        from ptyframe.data.follow import open_followed

        unsupported = {
            "orientation": str(config.orientation) != "0",
            "mask": config.mask is not None,
            "dark": config.dark is not None,
            "saturation": config.saturation is not None,
            "crop": config.crop is not None,
            "bin": int(config.bin) != 1,
            "decimate": int(config.decimate) != 1,
            "max_tiles": config.max_tiles is not None,
            "focus_to_sample_m": config.focus_to_sample_m is not None,
        }
        used = [k for k, v in unsupported.items() if v]
        if used:
            raise ConfigError(
                f"data.follow=true reads the patterns as stored; data.{', data.'.join(used)} "
                "cannot be applied while following yet (prepare the file, or run offline)"
            )

        return open_followed(config.path, float(config.follow_timeout_s))
    from ptyframe.data.reader import read_scan
    from ptyframe.data.scanfile import DetectorOptions, build_dataset

    scan = read_scan(config.path, context.registry, str(config.reader), context)
    opts = DetectorOptions(
        orientation=0,
        mask=config.mask,
        dark=config.dark,
        saturation=config.saturation,
        crop=None if config.crop is None else int(config.crop),
        bin=int(config.bin),
        check_values=bool(config.check_values),
        field=resolved_field(config),
        focus_to_sample_m=config.focus_to_sample_m,
        check_field=bool(config.check_field),
    )
    auto = None
    if str(config.orientation) == "auto" and opts.field == "near":
        raise ConfigError(
            "data.orientation=auto tries far-field ePIE reconstructions; give a near-field "
            "scan's orientation as a code (data.orientation=0..7)"
        )
    if str(config.orientation) == "auto":
        from ptyframe.data.orientation import choose_orientation

        build_dataset(scan, opts)  # every check on the whole file before the trials
        auto = choose_orientation(
            scan,
            opts,
            context.registry,
            int(config.orientation_epochs),
            int(config.orientation_tiles),
            int(context.seed),
        )
        opts.orientation, opts.check_values, opts.check_field = auto.code, False, False
    else:
        opts.orientation = int(config.orientation)
    ds = build_dataset(scan, opts)
    if auto is not None:
        ds.conventions["orientation_auto"] = auto.summary()
    idx = np.arange(ds.n_tiles)[:: int(config.decimate)]
    if config.max_tiles is not None:
        idx = idx[: int(config.max_tiles)]
    if len(idx) < ds.n_tiles:  # a lazy view: the patterns stay in the file until read
        ds = TileSubset(ds, idx)
    return split_validation(ds, float(config.validation_fraction), int(context.seed))
