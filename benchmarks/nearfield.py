"""Measure near-field and multislice reconstructions: autodiff and the fast engines.

Autodiff (the presets) and the fast engines (ePIE, rPIE, mPIE, LSQML at their defaults,
through the same presets with ``engine=NAME``) on the same simulated files in the same run:
seconds per epoch, the final data error against the Poisson noise floor of the counts
(``ptyframe.metrics.noise_floor``, as the run records it) and the FRC against the truth (the
run's truth metrics), for

* ``cone``: a cone-beam near-field scan like a measured one (``+case=nearfield_conebeam``:
  12.66 keV, z1 3.65 mm, z2 1.12 m, 55 um pixels, 100x100 frames, ~1e7 photons per frame, 200
  points ~1.2 um apart, three probe modes, mirror stripes, flux and gain variations, dead
  pixels), read from its CXI file with ``data.focus_to_sample_m``, reconstructed with
  ``+imaging=nearfield_conebeam`` (one probe mode, and three);
* ``multislice``: two particle films a gap of twenty depths of field apart
  (``simulation=multislice``), far field, reconstructed with ``+imaging=multislice`` and the
  known probe (the fast engines with ``engine.fix_probe=true``; nothing to centre).

Each case's rows run one after the other (autodiff first), so the speed ratio of a fast
engine to autodiff (``x autodiff``: autodiff's seconds per epoch over the row's) is taken
from neighbouring runs of one invocation.

The reconstructions run one at a time with one torch thread (``threads=1``); run the script
under the machine's benchmark lock (``flock LOCK python benchmarks/nearfield.py``) so that no
other timing overlaps. The table and ``docs/results/nearfield.md`` give the load average
beside them.

    .venv/bin/python benchmarks/nearfield.py [--epochs-cone 40] [--epochs-ms 60]
        [--engines epie rpie mpie lsqml] [--near-variants 'epie,engine.backend=torch' ...]
        [--ms-variants 'epie,engine.backend=torch' ...] [--cases multislice] [--rounds 3]
        [--baseline-tree ../main --baseline-engines lsqml]

``--baseline-tree DIR``: the rows of ``--baseline-engines`` also run from another checkout
(its ``.venv/bin/ptyframe``, in that folder), labelled ``ENGINE (baseline)``, in the same
round-robin as this checkout's rows: a before/after comparison measured interleaved.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from _lib.results import Stamp, markdown_table, write_page

ROOT = Path(__file__).resolve().parents[1]
#: The suffix of a row run from ``--baseline-tree``.
BASELINE = " (baseline)"
PTYFRAME = str(Path(sys.executable).with_name("ptyframe"))


def simulate(out: Path, cone: bool = True) -> dict[str, Path]:
    """Write the two simulated scans into ``out`` (the cone beam's only with ``cone``);
    return their paths (not timed)."""
    import ptyframe

    if cone:
        ptyframe.simulate_case("nearfield_conebeam").write(out / "cone.cxi")
    data = ptyframe.simulate_case("multislice_film")
    data.write(out / "ms.h5")
    return {"cone": out / "cone.cxi", "ms": out / "ms.h5", "gap": data.attrs["slice_gap_m"]}  # type: ignore[dict-item]


def reconstruct(overrides: list[str], out_dir: Path, tree: Path | None = None) -> dict[str, Any]:
    """Run ``ptyframe reconstruct`` (of checkout ``tree``, default this one); return the
    figures of its ``recon.h5``."""
    from ptyframe.io.results import read_result

    load = os.getloadavg()[0]
    exe = PTYFRAME if tree is None else str(tree / ".venv" / "bin" / "ptyframe")
    cmd = [exe, "reconstruct", *overrides, f"output.dir={out_dir}", "threads=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tree or ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    r = read_result(out_dir / "recon.h5")
    h = r.history
    secs = np.asarray(h.columns["seconds"], dtype=float)
    floor = float(r.attrs.get("noise_floor", np.nan))
    last = {k: float(h.last(k)) for k in h.columns}
    return {
        "epochs": float(len(secs)),
        "s_per_epoch": float(np.median(secs[1:] if len(secs) > 1 else secs)),
        "data_error": last["data_error"],
        "noise_floor": floor,
        "ratio": last["data_error"] / floor if floor > 0 else float("nan"),
        "frc_quarter": last.get("frc_quarter_nyquist", float("nan")),
        "frc_half": last.get("frc_half_nyquist", float("nan")),
        "nrmse": last.get("nrmse", float("nan")),
        "load": load,
        "backend": backend_of(r.attrs),
    }


def tree_commit(tree: Path) -> str:
    """Return the short commit of checkout ``tree`` (``?`` where git cannot tell)."""
    done = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or "?"


def backend_of(attrs: dict) -> str:
    """Return the run's backend as ``recon.h5`` records it (``numba+fftw``, ``torch``, ...)."""
    kind = str(attrs.get("engine_backend", "torch"))
    fft = str(attrs.get("engine_fft", "torch"))
    return f"{kind}+{fft}" if kind == "numba" else kind


def slice_correlations(result: Path, truth_file: Path) -> list[list[float]]:
    """Return ``c[i][j]``: the correlation of slice i's phase with true slice j's (inner part).

    The phase of each slice, mean removed, over the object frame less a quarter window at the
    borders (where fewer positions overlap); a separated reconstruction has ``c[i][i]`` near 1
    and ``c[i][j != i]`` near 0.
    """
    import h5py

    from ptyframe.io.results import read_result

    est = np.angle(read_result(result).object)
    with h5py.File(truth_file) as f:
        true = np.angle(f["truth/object"][()])
    q = 16
    inner = (slice(q, -q), slice(q, -q))

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a[inner] - a[inner].mean(), b[inner] - b[inner].mean()
        return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))

    return [[corr(est[i], true[j]) for j in range(true.shape[0])] for i in range(est.shape[0])]


def baseline_commit(tree: Path) -> str:
    """Return the short commit of the checkout ``tree`` (``+dirty`` with changes outside
    ``docs/results``), as the results pages name a tree."""
    top = ["git", "-C", str(tree)]
    head = subprocess.run([*top, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*top, "status", "--porcelain", "--", ".", ":!docs/results"], capture_output=True, text=True
    )
    name = head.stdout.strip() or "an unknown commit"
    return name + ("+dirty" if dirty.stdout.strip() else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs-cone", type=int, default=40)
    p.add_argument("--epochs-ms", type=int, default=60)
    p.add_argument("--engines", nargs="*", default=["epie", "rpie", "mpie", "lsqml"])
    p.add_argument(
        "--near-variants",
        nargs="*",
        default=["epie,engine.backend=torch", "epie,engine.fft=fftw"],
        help="more near-field rows: ENGINE,OVERRIDE,... (e.g. the torch visit, FFTW)",
    )
    p.add_argument(
        "--ms-variants",
        nargs="*",
        default=[],
        help="more multislice rows: ENGINE,OVERRIDE,... (e.g. 'epie,engine.backend=torch', "
        "'epie,engine.epochs=300')",
    )
    p.add_argument(
        "--cases",
        nargs="*",
        choices=["cone", "cone3", "multislice"],
        default=["cone", "cone3", "multislice"],
        help="which cases run (cone: one probe mode, cone3: three; multislice)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run each case's rows this many times, round-robin; s/epoch is the median over "
        "the rounds (the other figures are the first round's: the runs give the same bits)",
    )
    p.add_argument("--page", default="nearfield", help="the results page to write")
    p.add_argument("--baseline-tree", type=Path, default=None, help="another checkout")
    p.add_argument(
        "--baseline-engines",
        nargs="*",
        default=None,
        help="engines also run from --baseline-tree (default: --engines)",
    )
    args = p.parse_args()
    stamp = Stamp()
    if args.baseline_tree is not None:  # the page names the baseline by its commit, not path
        stamp.command = stamp.command.replace(str(args.baseline_tree), "BASELINE")
        stamp.command += f" (BASELINE: a checkout at {baseline_commit(args.baseline_tree)})"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        files = simulate(t, cone=any(c.startswith("cone") for c in args.cases))
        cone = [f"data.path={files['cone']}", "data.focus_to_sample_m=3.65e-3"]
        cone_ov = ["+imaging=nearfield_conebeam", *cone, f"engine.epochs={args.epochs_cone}"]
        ms_ov = [
            "+imaging=multislice",
            f"data.path={files['ms']}",
            f"physics.slice_spacing_m={files['gap']}",
            "init.probe=truth",
            f"engine.epochs={args.epochs_ms}",
        ]
        fast_ms = ["engine.fix_probe=true", "engine.center_probe=false"]
        cases = [
            ("cone", "near field, cone beam", "1 mode", cone_ov, []),
            ("cone3", "near field, cone beam", "3 modes", [*cone_ov, "init.probe_modes=3"], []),
            ("multislice", "multislice, 2 slices", "known probe", ms_ov, fast_ms),
        ]  # fmt: skip
        i = 0
        for key, case, variant, ov, fast_ov in cases:
            if key not in args.cases:
                continue
            base = float("nan")
            more = args.near_variants if case.startswith("near") else args.ms_variants
            baseline = []
            if args.baseline_tree is not None:
                names = args.engines if args.baseline_engines is None else args.baseline_engines
                baseline = [f"{name}{BASELINE}" for name in names]
            specs = ["autodiff", *baseline, *args.engines, *more]
            seconds: dict[str, list[float]] = {spec: [] for spec in specs}
            first: dict[str, dict[str, Any]] = {}
            for _ in range(args.rounds):  # round-robin: the load falls on every row alike
                for spec in specs:
                    engine, *settings = spec.split(",")
                    tree = None
                    if engine.endswith(BASELINE):
                        engine, tree = engine.removesuffix(BASELINE), args.baseline_tree
                    extra = [] if engine == "autodiff" else [f"engine={engine}", *fast_ov]
                    f = reconstruct([*ov, *extra, *settings], t / f"run{i}", tree)
                    seconds[spec].append(f["s_per_epoch"])
                    first.setdefault(spec, {**f, "dir": t / f"run{i}"})
                    i += 1
            for spec in specs:
                engine = spec.split(",")[0]
                f = {**first[spec], "s_per_epoch": float(np.median(seconds[spec]))}
                label = variant
                if case.startswith("multislice"):
                    c = slice_correlations(f["dir"] / "recon.h5", files["ms"])
                    label += (
                        " (slice phase corr. "
                        + ", ".join(f"{a}{b}: {c[a][b]:.2f}" for a in range(2) for b in range(2))
                        + ")"
                    )
                if engine == "autodiff":
                    base = f["s_per_epoch"]
                rows.append([
                    case, label, spec.replace(",engine.", " "), f["backend"],
                    f"{f['epochs']:.0f}", f"{f['s_per_epoch']:.3f}",
                    f"{base / f['s_per_epoch']:.1f}", f"{f['data_error']:.4f}",
                    f"{f['noise_floor']:.4f}", f"{f['ratio']:.2f}", f"{f['frc_quarter']:.3f}",
                    f"{f['frc_half']:.3f}", f"{f['nrmse']:.3f}", f"{f['load']:.1f}",
                ])  # fmt: skip
                print(" | ".join(rows[-1]), flush=True)
    header = [
        "case", "variant", "engine", "backend", "epochs", "s/epoch", "x autodiff", "data error",
        "noise floor",
        "error / floor", "FRC 1/4 Nyq.", "FRC 1/2 Nyq.", "NRMSE", "load",
    ]  # fmt: skip
    table = markdown_table(header, rows)
    print(table)
    about = (
        "Near-field (cone beam, Fresnel scaling) and multislice reconstructions by autodiff "
        "and by the fast engines at their defaults on simulated likenesses, the same files in "
        "one run (`benchmarks/nearfield.py` docstring): seconds per epoch (median "
        "over epochs after the first, and over the rounds of `--rounds`, each round running "
        "every row of a case once in turn; one torch thread, one run at a time under a lock; "
        "`x autodiff`: autodiff's seconds per epoch on the case over the row's), the "
        "final data error and the Poisson noise floor of the counts as the run records them, "
        "the FRC of the object against the truth at a quarter and a half of the Nyquist "
        "frequency and the NRMSE (the run's truth metrics; multislice: the product of the "
        "slices' transmissions as the metric sees the object). `backend`: the sweep's backend "
        "as `recon.h5` records it (`numba+torch`: the compiled sweep with `torch.fft`; "
        "autodiff: torch); rows with settings after the engine's name are extra variants "
        "(the torch visit, FFTW's or torch's transforms, more epochs). The load column is the "
        "1-minute load average when each run started (the machine is shared). Multislice "
        "also gives the correlation of each reconstructed slice's phase with each true "
        "slice's (ij: slice i against true slice j)."
    )
    if args.baseline_tree is not None:
        about += (
            f" Rows marked `{BASELINE.strip()}` ran the code of another checkout "
            f"(`--baseline-tree`, commit `{tree_commit(args.baseline_tree)}`) in the same "
            "rounds as this checkout's rows."
        )
    path = write_page(args.page, "Near field and multislice: autodiff and the fast engines",
                      table, stamp, about)  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
