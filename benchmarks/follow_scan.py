"""Reconstruct while another process writes the scan: latency and quality against offline.

Simulates the low-dose case of ``+experiment=lowdose`` (100 patterns of 64x64) into a
finished file, then replays it with ``python -m ptyframe.simulation.stream`` (a separate
writer process, ``--chunk`` patterns every ``--interval-s`` seconds, SWMR) while
``ptyframe reconstruct data.path=live.h5 data.follow=true engine.epochs=E`` follows it in a
third process, started ``--head-start-s`` before the writer (it waits for the file). A
watcher polls the run directory's ``live_images.json`` (what the PNGs show, written by the
drawer after them); for every chunk it reports the latency from the chunk's append to the
first image that includes it. Then offline runs over the finished file, with the same total
number of sweeps and with ``engine.epochs``, give the reference quality (truth FRC at 1/2
Nyquist)::

    OMP_NUM_THREADS=1 python benchmarks/follow_scan.py --out .follow-bench
    OMP_NUM_THREADS=1 python benchmarks/follow_scan.py --mpi 2 --out .follow-bench-mpi
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np

ENGINE = ["engine=epie", "engine.alpha=0.3", "engine.beta=0.2", "progress=false"]


def simulate(path: Path) -> None:
    """Write the low-dose case (``conf/case/lowdose.yaml``) to ``path``."""
    import ptyframe

    sim = ptyframe.simulate_case("lowdose")
    sim.write(path, overwrite=True)


def watch(run_dir: Path, stop: threading.Event, seen: list) -> None:
    """Record ``(positions drawn, drawn at)`` of every live image set (live_images.json)."""
    stamp = run_dir / "live_images.json"
    while not stop.is_set():
        try:
            d = json.loads(stamp.read_text())
            if not seen or seen[-1] != (d["n_tiles_used"], d["drawn_at"]):
                seen.append((int(d["n_tiles_used"]), float(d["drawn_at"])))
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)


def latencies(chunks: list[dict], seen: list) -> list[tuple[int, float]]:
    """Return ``(patterns, seconds)``: chunk append -> first image drawn with it included."""
    out = []
    for c in chunks:
        times = [t for n, t in seen if n >= c["stop"] and t >= c["t"]]
        out.append((c["stop"], min(times) - c["t"] if times else float("nan")))
    return out


def final(path: Path) -> tuple[float, int, int, str]:
    """Return (truth FRC at 1/2 Nyquist, sweeps, positions, status) of a ``recon.h5``."""
    with h5py.File(path, "r") as f:
        frc = f["history/frc_half_nyquist"][()]
        ok = np.flatnonzero(np.isfinite(frc))
        return (
            float(frc[ok[-1]]),
            int(f["history/epoch"].shape[0]),
            int(f["positions_px"].shape[0]),
            str(f.attrs["status"]),
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(".follow-bench"))
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--interval-s", type=float, default=2.0)
    ap.add_argument("--live-every-s", type=float, default=1.0)
    ap.add_argument("--mpi", type=int, default=1, help="ranks (mpiexec -n N, data parallel)")
    ap.add_argument(
        "--head-start-s", type=float, default=10.0, help="start the reader this much earlier"
    )
    args = ap.parse_args()
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    src, live, log = out / "src.h5", out / "live.h5", out / "chunks.jsonl"
    simulate(src)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "ptyframe.cli", "reconstruct"]
    mpi: list[str] = []
    if args.mpi > 1:
        mpi = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(args.mpi)]
        cli = [*mpi, *cli, "distribution=mpi_data_parallel"]
    follow_dir = out / "follow"
    reader = subprocess.Popen(
        [*cli, f"data.path={live}", "data.follow=true", "data.follow_timeout_s=60"]
        + [f"engine.epochs={args.epochs}", f"output.live_every_s={args.live_every_s}"]
        + [*ENGINE, f"hydra.run.dir={follow_dir}"],
        env=env,
    )
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=watch, args=(follow_dir, stop, seen), daemon=True)
    watcher.start()
    time.sleep(args.head_start_s)  # as at a beamline: the reconstruction waits for the scan
    t0 = time.time()
    writer = [sys.executable, "-m", "ptyframe.simulation.stream", str(src), str(live)]
    writer += ["--chunk", str(args.chunk), "--interval-s", str(args.interval_s), "--log", str(log)]
    subprocess.run(writer, check=True, env=env)
    t_scan = time.time() - t0
    reader.wait()
    stop.set()
    watcher.join()
    if reader.returncode != 0:
        print(f"follow run failed ({reader.returncode})", file=sys.stderr)
        return 1
    frc_f, sweeps, n_pos, status = final(follow_dir / "recon.h5")
    subprocess.run(
        [*cli, f"data.path={src}", f"engine.epochs={sweeps}", *ENGINE]
        + [f"hydra.run.dir={out / 'offline'}"],
        check=True,
        env=env,
    )
    frc_o, sweeps_o, _, _ = final(out / "offline" / "recon.h5")
    subprocess.run(
        [*cli, f"data.path={src}", f"engine.epochs={args.epochs}", *ENGINE]
        + [f"hydra.run.dir={out / 'offline_after'}"],
        check=True,
        env=env,
    )
    frc_a, sweeps_a, _, _ = final(out / "offline_after" / "recon.h5")
    chunks = [json.loads(line) for line in log.read_text().splitlines()]
    lat = latencies(chunks, seen)
    ranks = f", {args.mpi} ranks (mpi_data_parallel)" if args.mpi > 1 else ""
    print(f"\nfollow: {len(chunks)} chunks of {args.chunk} every {args.interval_s:g} s{ranks}")
    print(f"scan written in {t_scan:.1f} s; live image sets drawn: {len(seen)}")
    print("| chunk ends at pattern | latency: appended -> first image with it (s) |")
    print("|---|---|")
    for n, s in lat:
        print(f"| {n} | {s:.2f} |")
    finite = [s for _, s in lat if np.isfinite(s)]
    if finite:
        print(f"latency median {np.median(finite):.2f} s, max {max(finite):.2f} s")
    print("\n| run | sweeps | positions | status | truth FRC 1/2 Nyq. |")
    print("|---|---|---|---|---|")
    print(f"| follow (engine.epochs={args.epochs}) | {sweeps} | {n_pos} | {status} | {frc_f:.4f} |")
    print(f"| offline, same sweeps | {sweeps_o} | 100 | finished | {frc_o:.4f} |")
    print(f"| offline, engine.epochs sweeps | {sweeps_a} | 100 | finished | {frc_a:.4f} |")
    print(f"follow / offline FRC (same sweeps): {100 * frc_f / frc_o:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
