"""Write a scan into a data-exchange file chunk by chunk, as a beamline would (SWMR).

Replays a finished data-exchange file (e.g. from ``ptyframe simulate``) into a new file that
follows the contract of ``ptyframe.data.follow``: created with the object frame, energy,
pixel size, the truth (if the source has one) and ``scan_complete = False``; then in SWMR
write mode ``chunk`` patterns are appended every ``interval_s`` seconds (the data first, the
positions after ``torn_s`` seconds: a reader in between sees a torn append), and
``scan_complete`` is set at the end. Each chunk's append time goes to ``--log`` as JSON lines
(``{"stop": n, "t": unix seconds}``) for latency measurements::

    python -m ptyframe.simulation.stream demo.h5 live.h5 --chunk 10 --interval-s 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def create(path: Path, source: Path, window: tuple[int, int]) -> None:
    """Create the growable file from ``source``'s metadata (no pattern yet)."""
    import h5py

    m, n = window
    with h5py.File(source, "r") as src, h5py.File(path, "w", libver="latest") as f:
        d = f.create_dataset(
            "exchange/data", shape=(1, 0, m, n), maxshape=(1, None, m, n), dtype="f4",
            chunks=(1, 1, m, n),
        )  # fmt: skip
        d.attrs["quantity"] = src["exchange/data"].attrs.get("quantity", "intensity")
        f.create_dataset("metadata/probe_pos_px", shape=(0, 2), maxshape=(None, 2), dtype="f8")
        for key in ("metadata/energy_ev", "metadata/psize_cm", "metadata/object_shape_px"):
            f[key] = src[key][()]
        for key in ("truth/object", "truth/probe", "truth/illumination"):
            if key in src:
                f[key] = src[key][()]
        f.attrs["scan_complete"] = False


def append(f: object, data: np.ndarray, pos: np.ndarray, torn_s: float = 0.0) -> None:
    """Append tiles to an open SWMR file: data, flush, (wait ``torn_s``), positions, flush."""
    d, p = f["exchange/data"], f["metadata/probe_pos_px"]  # type: ignore[index]
    n0, k = int(d.shape[1]), int(data.shape[0])
    d.resize((1, n0 + k, *d.shape[2:]))
    d[0, n0 : n0 + k] = data
    d.flush()
    if torn_s > 0:
        time.sleep(torn_s)
    p.resize((n0 + k, 2))
    p[n0 : n0 + k] = pos
    p.flush()


def stream(
    source: Path,
    out: Path,
    chunk: int,
    interval_s: float,
    torn_s: float = 0.0,
    log_path: Path | None = None,
    first_delay_s: float = 0.0,
) -> int:
    """Replay ``source`` into ``out`` in chunks; return the number of patterns written."""
    import h5py

    with h5py.File(source, "r") as src:
        data = np.asarray(src["exchange/data"][0], dtype=np.float32)
        pos = np.asarray(src["metadata/probe_pos_px"][()], dtype=np.float64)
    create(out, source, data.shape[-2:])
    logf = open(log_path, "a") if log_path is not None else None
    try:
        with h5py.File(out, "a", libver="latest") as f:
            f.swmr_mode = True
            time.sleep(first_delay_s)
            for s in range(0, len(pos), chunk):
                append(f, data[s : s + chunk], pos[s : s + chunk], torn_s)
                if logf is not None:
                    logf.write(json.dumps({"stop": min(s + chunk, len(pos)), "t": time.time()}))
                    logf.write("\n")
                    logf.flush()
                if s + chunk < len(pos):
                    time.sleep(interval_s)
            f.attrs["scan_complete"] = True
            f.flush()
    finally:
        if logf is not None:
            logf.close()
    return len(pos)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", type=Path, help="a finished data-exchange file")
    ap.add_argument("out", type=Path, help="the file to grow (overwritten)")
    ap.add_argument("--chunk", type=int, default=10, help="patterns per append")
    ap.add_argument("--interval-s", type=float, default=1.0, help="seconds between appends")
    ap.add_argument("--torn-s", type=float, default=0.0, help="seconds between data and positions")
    ap.add_argument("--first-delay-s", type=float, default=0.0, help="wait before the first chunk")
    ap.add_argument("--log", type=Path, default=None, help="JSON lines: time of each append")
    args = ap.parse_args(argv)
    n = stream(
        args.source, args.out, args.chunk, args.interval_s, args.torn_s, args.log,
        args.first_delay_s,
    )  # fmt: skip
    print(f"wrote {n} patterns into {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
