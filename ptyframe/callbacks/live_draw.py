"""Draw a run directory's PNGs whenever its ``recon.h5`` changes (the live view's drawer).

Started by ``LiveOutputs`` as a process of its own, so that drawing (slower than a sweep)
neither stops the sweeps nor waits for them (a thread would share the interpreter lock with
the per-position loop)::

    python -m ptyframe.callbacks.live_draw RUN_DIR --stop RUN_DIR/.live-stop

Each version of ``recon.h5`` (written atomically by the run) is read once and drawn into a
hidden temporary folder; each PNG is then renamed into place, so a viewer never sees half
an image, and ``live_images.json`` says what they show (``epochs_done``, ``n_tiles_used``,
``drawn_at`` in Unix seconds). The drawer ends when the stop file appears or its parent
process is gone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ptyframe.io.results import RESULT_FILE

STAMP_FILE = "live_images.json"


def draw(out: Path) -> list[Path]:
    """Draw the object, probe and convergence PNGs of ``out/recon.h5`` into ``out``."""
    from ptyframe.io import images
    from ptyframe.io.results import read_result
    from ptyframe.metrics.illumination import illumination_map

    stored = read_result(out / RESULT_FILE)
    obj = stored.object
    est = np.asarray(
        np.prod(obj, axis=0) if obj.ndim == 3 and obj.shape[0] > 1 else obj.reshape(obj.shape[-2:])
    )
    pixel_m = float(stored.attrs.get("pixel_size_m", float("nan")))
    illum = illumination_map(stored.probe, stored.positions_px, (est.shape[-2], est.shape[-1]))
    tmp = Path(tempfile.mkdtemp(prefix=".live-", dir=out))
    try:
        drawn = images.object_images(est, tmp, pixel_m, illum)
        drawn.append(images.probe_image(stored.probe, tmp, pixel_m))
        if stored.history.epochs:
            drawn.append(images.convergence_image(stored.history, tmp))
        done = []
        for p in drawn:
            os.replace(p, out / p.name)  # atomic within one file system
            done.append(out / p.name)
        stamp = {
            "epochs_done": int(stored.attrs.get("epochs_done", len(stored.history.epochs))),
            "n_tiles_used": int(stored.positions_px.shape[0]),
            "drawn_at": time.time(),
        }
        (tmp / STAMP_FILE).write_text(json.dumps(stamp))
        os.replace(tmp / STAMP_FILE, out / STAMP_FILE)
        done.append(out / STAMP_FILE)
        return done
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def follow(out: Path, stop: Path, parent: int, poll_s: float = 0.1) -> None:
    """Redraw on every new ``recon.h5`` until ``stop`` exists or ``parent`` is gone."""
    last = None
    while not stop.exists() and _alive(parent):
        try:
            stamp = (out / RESULT_FILE).stat().st_mtime_ns
        except OSError:
            stamp = None
        if stamp is not None and stamp != last:
            last = stamp
            try:
                draw(out)
            except Exception as exc:  # a live view must not end the run
                print(f"live_draw: {exc}", file=sys.stderr)
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--stop", type=Path, required=True)
    ap.add_argument("--parent", type=int, default=os.getppid())
    args = ap.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    follow(args.out, args.stop, args.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
