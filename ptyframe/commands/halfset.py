"""``ptyframe halfset``: the half-set FRC resolution of any data file (no truth needed).

    ptyframe halfset data.path=scan.h5 engine=epie engine.epochs=200 [--out DIR]

takes the same Hydra overrides as ``ptyframe reconstruct`` (``+experiment=lowdose`` too),
splits the scan into two interleaved halves (``ptyframe.metrics.halfset.split_halves``),
reconstructs each alone with the composed settings into ``DIR/half_a`` and ``DIR/half_b``
(``recon.h5`` and images of each), and writes ``DIR/halfset.json`` (resolution in nm at the
1/2-bit and 1/7 thresholds, the band values at 1/4, 1/2, 3/4 Nyquist, the curve) and
``DIR/halfset_frc.png`` (curve, threshold, resolution). ``DIR`` defaults to ``output.dir`` or
``halfset/<date>_<time>``.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

from ptyframe import cli
from ptyframe.errors import PtyframeError
from ptyframe.metrics.halfset import HalfsetResult, halfset_from_runs, split_halves, write_halfset

__all__ = ["halfset_of", "main", "run_halfset"]


def halfset_of(
    dataset: Any, engine: Any = "epie", registry: Any = None, seed: int = 0, **engine_options: Any
) -> HalfsetResult:
    """Return the half-set comparison of an in-memory ``dataset`` (no files written).

    Each half is reconstructed by ``ptyframe.runner.reconstruct(half, engine, seed=seed,
    **engine_options)`` (default initial guess), e.g. ``halfset_of(ds, "epie", epochs=50)``.
    """
    from ptyframe.runner import reconstruct

    objects, probes, positions = [], [], []
    for idx in split_halves(dataset.geometry.positions_px):
        result = reconstruct(
            dataset.select(idx), engine, registry=registry, seed=seed, **engine_options
        )
        objects.append(result.object)
        probes.append(result.probe)
        positions.append(result.state.positions_px.detach().cpu().numpy())
    return halfset_from_runs(
        (objects[0], objects[1]),
        (probes[0], probes[1]),
        (positions[0], positions[1]),
        float(dataset.geometry.pixel_size_m),
    )


def run_halfset(
    cfg: Any, registry: Any, out_dir: str | Path, dataset: Any = None
) -> tuple[HalfsetResult, list[Path]]:
    """Reconstruct both halves of ``cfg``'s dataset with ``cfg``'s settings and compare them.

    ``dataset`` (a ``PtychoDataset``) replaces ``cfg.data`` when given. Returns the result and
    the files written into ``out_dir``.
    """
    from ptyframe.runner import run, typed_config

    cfg = typed_config(cfg)
    ds = dataset if dataset is not None else registry.build("dataset", cfg.data)
    halves = split_halves(ds.geometry.positions_px)
    out = Path(out_dir)
    objects, probes, positions = [], [], []
    for name, idx in zip(("half_a", "half_b"), halves, strict=True):
        half_cfg = copy.deepcopy(cfg)
        half_cfg.output.dir = str(out / name)
        half_cfg.resume = False
        result = run(half_cfg, registry, out_dir=out / name, dataset=ds.select(idx))
        objects.append(result.object)
        probes.append(result.probe)
        positions.append(result.state.positions_px.detach().cpu().numpy())
    res = halfset_from_runs(
        (objects[0], objects[1]),
        (probes[0], probes[1]),
        (positions[0], positions[1]),
        float(ds.geometry.pixel_size_m),
    )
    title = f"{getattr(cfg.engine, 'name', 'engine')}, {ds.n_tiles} positions split in two"
    return res, write_halfset(res, out, title)


def main(argv: list[str]) -> int:
    """Half-set FRC resolution of a data file: reconstruct two halves and compare them."""
    ap = argparse.ArgumentParser(
        prog="ptyframe halfset",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Other arguments are Hydra overrides of `ptyframe reconstruct` "
        "(data.path=F engine=epie engine.epochs=N ...).",
    )
    ap.add_argument("--out", default=None, help="output directory (default: halfset/<time>)")
    args, overrides = ap.parse_known_args(argv)
    try:
        cfg, registry = _compose(overrides)
        out = args.out or cfg.output.dir or time.strftime("halfset/%Y-%m-%d_%H-%M-%S")
        res, files = run_halfset(cfg, registry, out)
    except PtyframeError as exc:
        return cli.fail(exc, exc.exit_code)
    summary = res.summary()
    nm = summary["resolution_half_bit_nm"]
    text = f"{nm:.1f} nm" if nm is not None else "pixel-limited (FRC above 1/2-bit up to Nyquist)"
    print(f"ptyframe: half-set resolution (1/2-bit) {text}; wrote {', '.join(map(str, files))}")
    return 0


def _compose(overrides: list[str]) -> tuple[Any, Any]:
    """Return ``(reconstruct config, registry)`` composed like ``ptyframe reconstruct``.

    The overrides are checked first as ``ptyframe reconstruct`` checks them
    (``ptyframe.overrides.check_overrides`` with ``commands.reconstruct.validate``): a typo
    is one ``ConfigError`` line with ``did you mean``, before anything is written.
    """
    from hydra import compose, initialize
    from hydra.core.global_hydra import GlobalHydra

    from ptyframe.commands.reconstruct import validate
    from ptyframe.overrides import check_overrides, overrides_of

    app = cli.current_app()
    cli.setup_hydra(app.registry, app.searchpaths)
    checked = overrides_of(list(overrides))
    if checked is not None:
        check = lambda body: validate(body, app.registry)  # noqa: E731
        check_overrides("reconstruct", checked, check, cli.config_of(app.registry))
    GlobalHydra.instance().clear()
    with initialize(version_base="1.3", config_path=None):
        cfg = compose("reconstruct", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return cfg, app.registry
