"""Reconstruct one simulated case from three file layouts and compare the quality.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/readers/quality.py [--epochs 100] [--out DIR]

The case (ptyframe's simulator: particle film, focused probe, 10 x 10 jittered raster,
Poisson noise) is written as

* the data-exchange file (``ptyframe.data.exchange.write_dataset``, with the truth);
* CXI by cdtools-py's own writer (``Ptycho2DDataset.to_cxi``, run in ``.venv-cdtools``);
* PtyLab's input layout (``ptychogram``, ``encoder`` [m], ``wavelength``, ``dxd``, ``zo``),
  checked by loading it with PtyLab's own ``ExperimentalData`` when ``.venv-ptylab`` exists.

Each file is read by ptyframe's reader (chosen from the contents) and reconstructed by the
same ePIE run (same seed); the object is compared with the truth (cropped by the whole-pixel
offset between the positions read and the true ones) by the runner's metrics: NRMSE and FRC
of the windowed deviations (``ptyframe.metrics``). Prints one table row per file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _lib
from _lib.reader_case import PITCH_M, simulate

ROOT = Path(__file__).resolve().parents[2]
PTYLAB_CHECK = """
import sys, numpy as np
from PtyLab import ExperimentalData
d = ExperimentalData(sys.argv[1], operationMode="CPM")
dxo = d.wavelength * d.zo / (d.Nd * d.dxd)
print(f"PtyLab loads it: {d.numFrames} frames of {d.Nd}x{d.Nd}, dxo = {dxo:.6g} m")
"""


def write_files(sim, out: Path) -> dict[str, Path]:
    from ptyframe.data.exchange import write_dataset

    g = sim.geometry
    pats = np.asarray(sim.patterns)[0]
    files = {"data-exchange": out / "case.h5"}
    write_dataset(files["data-exchange"], pats[None], g, truth=sim.truth, overwrite=True)
    npz = out / "case.npz"
    np.savez(
        npz,
        patterns=pats,
        positions_px=g.positions_px,
        pixel_size_m=g.pixel_size_m,
        wavelength_m=g.wavelength_m,
        pitch_m=PITCH_M,
    )
    cdt = ROOT / ".venv-cdtools" / "bin" / "python"
    if cdt.exists():
        files["CXI (cdtools-py writer)"] = out / "case_cdtools.cxi"
        subprocess.run(
            [str(cdt), str(ROOT / "benchmarks/readers/cdtools_write_cxi.py"), str(npz),
             str(files["CXI (cdtools-py writer)"])],
            check=True,
        )  # fmt: skip
    else:
        print("no .venv-cdtools (make readers-peers): CXI row skipped", file=sys.stderr)
    m = g.window[0]
    files["PtyLab layout"] = out / "case_ptylab.h5"
    with h5py.File(files["PtyLab layout"], "w") as f:
        f["ptychogram"] = pats
        f["encoder"] = g.positions_px * g.pixel_size_m
        f["wavelength"] = g.wavelength_m
        f["dxd"] = PITCH_M
        f["zo"] = g.pixel_size_m * m * PITCH_M / g.wavelength_m
        f["orientation"] = 0
    ptylab = ROOT / ".venv-ptylab" / "bin" / "python"
    if ptylab.exists():
        res = subprocess.run(
            [str(ptylab), "-c", PTYLAB_CHECK, str(files["PtyLab layout"])],
            capture_output=True,
            text=True,
        )
        print((res.stdout.strip().splitlines() or [res.stderr.strip()])[-1], file=sys.stderr)
    return files


def score(path: Path, sim, epochs: int, seed: int) -> dict[str, float | str]:
    from ptyframe.metrics.illumination import illumination_map
    from ptyframe.plugins import default_registry
    from ptyframe.registry import BuildContext
    from ptyframe.runner import reconstruct

    reg = default_registry()
    ds = reg.build("dataset", {"name": "file", "path": str(path)}, BuildContext(reg))
    res = reconstruct(ds, "epie", registry=reg, epochs=epochs, seed=seed, alpha=0.4, beta=0.8)
    est = res.object[0]
    # the reader's origin is the stage's: find the whole-pixel offset to the truth's frame
    offset = np.median(sim.geometry.positions_px - ds.geometry.positions_px, axis=0)
    sy, sx = (int(v) for v in np.round(offset))
    truth = np.asarray(sim.truth.object)[0][sy:, sx:][: est.shape[0], : est.shape[1]]
    truth_probe = np.asarray(sim.truth.probe)
    illum = illumination_map(truth_probe, ds.geometry.positions_px, est.shape)
    ctx = BuildContext(reg)
    values: dict[str, float | str] = {
        "reader": ds.conventions["reader"],
        "dx_nm": ds.geometry.pixel_size_m * 1e9,
        "shift": f"{sy},{sx}",
        "data_error": res.history.last("data_error"),
    }
    frc = reg.build("metric", "frc", ctx)
    prepared = frc.prepare(est, truth, illum)
    values.update(frc(est, truth, illum, ds.geometry.pixel_size_m, prepared=prepared))
    values.update(
        reg.build("metric", "nrmse", ctx)(
            est, truth, illum, ds.geometry.pixel_size_m, prepared=prepared
        )
    )
    return values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("outputs/readers_quality"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sim = simulate(args.seed)
    files = write_files(sim, args.out)
    print(f"ePIE (alpha 0.4, beta 0.8), {args.epochs} epochs, seed {args.seed}")
    head = (
        f"{'file':26s} {'reader':9s} {'dx [nm]':>8s} {'shift':>6s} {'data err':>9s} "
        f"{'NRMSE':>7s} {'FRC 1/4':>8s} {'FRC 1/2':>8s} {'FRC 3/4':>8s} {'res 1/2-bit':>11s}"
    )
    print(head)
    for label, path in files.items():
        v = score(path, sim, args.epochs, args.seed)
        print(
            f"{label:26s} {v['reader']:9s} {v['dx_nm']:8.4f} {v['shift']:>6s} "
            f"{v['data_error']:9.5f} {v['nrmse']:7.4f} {v['frc_quarter_nyquist']:8.4f} "
            f"{v['frc_half_nyquist']:8.4f} {v['frc_3q_nyquist']:8.4f} "
            f"{v['resolution_half_bit_m'] * 1e9:9.2f}nm"
        )


if __name__ == "__main__":
    main()
