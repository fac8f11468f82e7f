"""Measure the transform floor of the compiled near-field PIE sweep against its epochs.

The compiled near-field sweep (``ptyframe.engines.nearfield_sweep``) makes six DFTs of the
buffered window ``[K, M', N']`` at every position, whatever else it saves: the probe's
sub-pixel shift (``shift``), the propagation to the detector and back (``forward``,
``inverse``), the propagation of the detector step back (``forward``, ``inverse``) and the fold
of the probe step (``fold``). So one epoch of ``J`` positions costs at least ``J`` times those
six transforms. This script times that floor with the sweep's own planned buffers
(``pie_fft.WindowFFT``, ``torch.fft`` as ``engine.fft=auto`` picks in the near field, one
thread, in a fresh process as each reconstruction runs), and beside it, in the same run, the
seconds per epoch of autodiff and of compiled ePIE on the cone-beam likeness of
``benchmarks/nearfield.py`` with one and with three probe modes. ``floor / (autodiff / 5)``
above 1 says that no sweep making those transforms can be five times as fast as autodiff on
that case.

The rows run in turn (autodiff, ePIE, floor) ``--rounds`` times; the medians are given, with
the load average. Run under the machine's benchmark lock:

    flock LOCK .venv/bin/python benchmarks/nearfield_floor.py [--rounds 3] [--epochs 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from nearfield import reconstruct, simulate

from _lib.results import Stamp, markdown_table, write_page

#: The DFT calls the compiled sweep makes per position (module docstring).
CALLS_PER_POSITION = ("shift", "forward", "inverse", "forward", "inverse", "fold")


def floor_seconds(shape: tuple[int, int, int], positions: int, epochs: int = 3) -> float:
    """Return the median seconds of one epoch's transforms: ``positions`` times the six
    calls of ``CALLS_PER_POSITION`` on a complex64 ``WindowFFT`` of ``shape`` (torch.fft)."""
    from ptyframe.engines.pie_fft import WindowFFT

    torch.set_num_threads(1)
    w = WindowFFT(shape, torch.complex64, subpixel=True, kind="torch")
    for buf in (w.psi, w.wave, w.shifted, w.spec):
        buf[...] = 0.0  # an FFT's time does not depend on the values
    calls = [getattr(w, name) for name in CALLS_PER_POSITION]
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for _ in range(positions):
            for call in calls:
                call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def floor_in_fresh_process(shape: tuple[int, int, int], positions: int) -> float:
    """Return ``floor_seconds`` measured in a new process, as each reconstruction runs (the
    benchmark's own process, after simulating the files, times the same calls slower)."""
    cmd = [sys.executable, __file__, "--floor", *map(str, shape), str(positions)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--floor":  # floor_in_fresh_process's child
        k, m, n, positions = map(int, sys.argv[2:])
        print(floor_seconds((k, m, n), positions))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--page", default="nearfield_floor")
    args = p.parse_args()
    stamp = Stamp()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        files = simulate(t)
        base = [
            "+imaging=nearfield_conebeam",
            f"data.path={files['cone']}",
            "data.focus_to_sample_m=3.65e-3",
            f"engine.epochs={args.epochs}",
        ]
        i = 0
        for modes in (1, 3):
            ov = [*base, f"init.probe_modes={modes}"]
            secs: dict[str, list[float]] = {"autodiff": [], "epie": [], "floor": []}
            window, positions = None, 0
            for _ in range(args.rounds):
                for name in ("autodiff", "epie"):
                    extra = [] if name == "autodiff" else ["engine=epie"]
                    f = reconstruct([*ov, *extra], t / f"run{i}")
                    i += 1
                    secs[name].append(f["s_per_epoch"])
                    if window is None:  # the buffered window and the scan, as run
                        from ptyframe.io.results import read_result

                        r = read_result(t / f"run{i - 1}" / "recon.h5")
                        window, positions = r.probe.shape[-2:], len(r.positions_px)
                assert window is not None
                secs["floor"].append(floor_in_fresh_process((modes, *window), positions))
            ad, ep, fl = (float(np.median(secs[k])) for k in ("autodiff", "epie", "floor"))
            rows.append([
                str(modes), f"{window[0]}x{window[1]}", str(positions), f"{ad:.3f}",
                f"{ad / 5:.3f}", f"{ep:.3f}", f"{ad / ep:.1f}", f"{fl:.3f}",
                f"{fl / (ad / 5):.2f}", f"{fl / ep:.2f}", f"{os.getloadavg()[0]:.1f}",
            ])  # fmt: skip
            print(" | ".join(rows[-1]), flush=True)
    header = [
        "probe modes", "window", "positions", "autodiff s/epoch", "autodiff / 5",
        "ePIE s/epoch", "x autodiff", "DFT floor s/epoch", "floor / (autodiff / 5)",
        "floor / ePIE", "load",
    ]  # fmt: skip
    table = markdown_table(header, rows)
    print(table)
    about = (
        "The transform floor of the compiled near-field PIE sweep on the cone-beam likeness "
        "(`benchmarks/nearfield_floor.py` docstring): six DFTs of the buffered window per "
        "position with the sweep's own planned buffers (torch.fft, complex64, one thread), "
        "timed in the same run as autodiff and compiled ePIE (medians over the rounds; "
        "seconds per epoch are the runs' medians over epochs after the first). `floor / "
        "(autodiff / 5)` above 1: a sweep making those transforms cannot be five times as "
        "fast as autodiff on this case. `floor / ePIE`: the share of the transforms in "
        "ePIE's epoch. Load: the 1-minute load average at the end of each row."
    )
    path = write_page(args.page, "Near field: the transform floor of the compiled sweep",
                      table, stamp, about)  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
