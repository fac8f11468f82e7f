"""Run PtyLab 0.3.7 on a data-exchange file; executed in ``.venv-ptylab`` (no ptyframe there).

    .venv-ptylab/bin/python benchmarks/peers/run_ptylab.py DATA.h5 OUT.npz \
        --engine ePIE --sweeps 100 --threads 1 [--truth-probe] [--seed 0] [--snapshots 1,5,10]
        [--lockstep] [--position-correction] [--truth-positions]

``--lockstep`` (for interleaved timings, ``benchmarks/epie_sweep.py``): wait for a line on
stdin before the first sweep and after each sweep, having printed ``sweep SECONDS`` (the
waits are outside the timed sweeps).

Mapping (checked by the truth-probe run of ``compare.py``, which must align at zero shift):

* Patterns: PtyLab's CPM far field is the centred unitary FFT
  ``fftshift(fft2(ifftshift(psi), norm="ortho"))``, the same intensities as ptyframe's
  ``|fft2(psi, norm="ortho")|^2`` centred (the ``ifftshift`` of the exit wave only multiplies
  the spectrum by a phase ramp), so ``/exchange/data`` goes in as ``ptychogram`` unchanged and
  a ptyframe probe is a PtyLab probe with no rescaling.
* Pixel: PtyLab's object pixel is ``dxo = wavelength zo / (M dxd)``; with an arbitrary
  ``dxd = 75 um`` we set ``zo = dxo M dxd / wavelength`` so that ``dxo`` equals the file's pixel
  (the Fraunhofer propagator uses ``zo`` for nothing else).
* Positions: PtyLab puts window r at ``round(encoder_r / dxo) + No // 2 - Np // 2`` in an object
  of its own size ``No``: it rounds sub-pixel positions to whole pixels (the largest rounding
  is recorded as ``max_position_rounding_px``). We feed ``encoder = (pos_px - c) dxo`` with
  ``c`` the integer centre of the scan, so its windows are ours (rounded) moved by a constant
  offset, read back as ``reconstruction.positions - round(pos_px)`` (checked constant) and
  used to crop ptyframe's frame out of PtyLab's object.
* Position correction (``--position-correction``, mPIE; ``params.positionCorrectionSwitch``,
  PtyLab's defaults otherwise): the refined positions are PtyLab's ``encoder_corrected`` (metres,
  continuous, though its windows are cut at rounded positions), written back on ptyframe's
  frame as ``encoder_corrected / dxo + c`` (``positions_px``). ``--truth-positions`` feeds the
  file's ``/truth/positions_px`` instead of the recorded positions (the mapping check of a
  corrected run: started there it must stay there).
* Settings (its CPM tutorial; no display): Fraunhofer propagator, random position order
  (``np.random.seed``), standard intensity constraint, probe power correction on, centre-of-
  mass stabilisation off (it rolls the object by whole pixels), object "ones", probe "circ"
  (a disc of a third of the window) or, with ``--truth-probe``, the file's ``/truth/probe``
  with the probe update switched off (``betaProbe = 0``, ePIE only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _lib
from _lib.exchange_io import read_case, set_threads, write_result

DETECTOR_PITCH_M = 75e-6
ENGINES = ("ePIE", "mPIE")


def write_ptylab_file(case, path: Path) -> tuple:
    """Write PtyLab's CPM input file; return the integer scan centre ``(cy, cx)``."""
    import h5py
    import numpy as np

    centre = np.round((case.positions_px.min(0) + case.positions_px.max(0)) / 2.0)
    dxo = case.pixel_size_m
    zo = dxo * case.window_px * DETECTOR_PITCH_M / case.wavelength_m
    with h5py.File(path, "w") as f:
        f["ptychogram"] = case.patterns
        f["wavelength"] = case.wavelength_m
        f["encoder"] = (case.positions_px - centre) * dxo
        f["dxd"] = DETECTOR_PITCH_M
        f["zo"] = zo
        f["orientation"] = 0
    return centre


def run(args: argparse.Namespace) -> None:
    """Load, map, reconstruct and write the result (see the module docstring)."""
    import numpy as np
    import PtyLab
    from PtyLab import Engines

    case = read_case(args.data)
    if args.truth_positions:
        if case.truth_positions is None:
            raise SystemExit(f"{args.data} has no /truth/positions_px")
        case.positions_px = case.truth_positions
    tmp = tempfile.TemporaryDirectory()
    path = Path(tmp.name) / "ptylab.hdf5"
    centre = write_ptylab_file(case, path)
    data = PtyLab.ExperimentalData(path, operationMode="CPM")
    params = PtyLab.Params()
    params.propagatorType = "Fraunhofer"
    params.positionOrder = "random"
    params.intensityConstraint = "standard"
    params.probePowerCorrectionSwitch = True
    params.comStabilizationSwitch = False
    params.gpuSwitch = False
    params.positionCorrectionSwitch = bool(args.position_correction)
    recon = PtyLab.Reconstruction(data, params)
    recon.initialProbe = "circ"
    recon.initialObject = "ones"
    recon.initializeObjectProbe()
    m = case.window_px
    if abs(recon.dxo - case.pixel_size_m) > 1e-6 * case.pixel_size_m:
        raise SystemExit(f"PtyLab's object pixel {recon.dxo} m != the file's {case.pixel_size_m}")
    offset = np.asarray(recon.positions) - np.round(case.positions_px).astype(int)
    oy, ox = (int(np.median(offset[:, k])) for k in (0, 1))
    if np.abs(offset - [oy, ox]).max() > 1:
        raise SystemExit(f"PtyLab's positions are not a constant shift of ours: {offset[:4]}")
    rounding_px = float(np.abs(np.asarray(recon.positions) - [oy, ox] - case.positions_px).max())
    if args.truth_probe:
        if case.truth_probe is None:
            raise SystemExit(f"{args.data} has no /truth/probe")
        recon.probe = case.truth_probe.astype(np.complex64).reshape(recon.probe.shape)
    engine = getattr(Engines, args.engine)(recon, data, params, PtyLab.DummyMonitor())
    engine.numIterations = int(args.sweeps)
    if args.truth_probe:
        engine.betaProbe = 0.0
    seconds: list[float] = []
    starts: list[float] = []
    snaps: list[np.ndarray] = []
    wanted = {int(k) for k in args.snapshots.split(",") if k}
    shown = engine.showReconstruction
    ny, nx = case.object_shape

    def stamp(loop, *a, **kw):
        out = shown(loop, *a, **kw)
        seconds.append(time.perf_counter() - starts[-1])
        if args.lockstep:
            print(f"sweep {seconds[-1]!r}", flush=True)
            sys.stdin.readline()
        if loop + 1 in wanted:  # a copy of the object on our frame, outside the timing
            o = np.asarray(recon.object).reshape(recon.object.shape[-2:])
            snaps.append(o[oy : oy + ny, ox : ox + nx].astype(np.complex64))
        starts.append(time.perf_counter())
        return out

    engine.showReconstruction = stamp
    np.random.seed(int(args.seed))
    if args.lockstep:
        sys.stdin.readline()
    starts.append(time.perf_counter())
    engine.reconstruct()
    if wanted:
        done = sorted(k for k in wanted if k <= len(seconds))
        np.savez(f"{args.out}.snapshots.npz", sweeps=np.asarray(done), objects=np.stack(snaps))
    obj = np.asarray(recon.object).reshape(recon.object.shape[-2:])[oy : oy + ny, ox : ox + nx]
    if obj.shape != (ny, nx):
        raise SystemExit(f"PtyLab's object {recon.object.shape} does not hold the frame {ny, nx}")
    probe = np.asarray(recon.probe).reshape(m, m)
    info = {
        "tool": "PtyLab",
        "version": getattr(PtyLab, "__version__", "0.3.7"),
        "engine": args.engine,
        "sweeps": int(args.sweeps),
        "threads": int(args.threads),
        "truth_probe": bool(args.truth_probe),
        "offset_px": [oy, ox],
        "max_position_rounding_px": rounding_px,
        "No": int(recon.No),
        "settings": "Fraunhofer, random order, standard constraint, probe power correction",
        "position_correction": bool(args.position_correction),
    }
    extra = {}
    if args.position_correction:
        enc = np.asarray(recon.encoder_corrected, dtype=np.float64)
        extra["positions_px"] = enc / float(recon.dxo) + centre
    write_result(args.out, obj, probe, seconds, info, **extra)
    tmp.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--engine", default="ePIE", choices=ENGINES)
    p.add_argument("--sweeps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truth-probe", action="store_true")
    p.add_argument("--position-correction", action="store_true", help="mPIE's correction")
    p.add_argument("--truth-positions", action="store_true", help="start at /truth/positions_px")
    p.add_argument("--lockstep", action="store_true", help="one sweep per line read on stdin")
    p.add_argument(
        "--snapshots",
        default="",
        help="comma-separated sweep counts after which the object is saved (untimed) to "
        "OUT.snapshots.npz (sweeps, objects): quality-vs-time curves",
    )
    args = p.parse_args()
    set_threads(args.threads)
    os.environ.setdefault("MPLBACKEND", "Agg")
    run(args)
    print(json.dumps({"ok": args.out}))


if __name__ == "__main__":
    main()
