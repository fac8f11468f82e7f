"""Save and restore everything a run needs to continue exactly where it stopped.

``checkpoint.h5`` holds the unknowns, the engine's own state (optimizer moments, step sizes),
the torch and NumPy RNG states, the history, the next epoch and a fingerprint of the config.
Written atomically, so a run killed while writing keeps the previous checkpoint. Resuming
with a different config is refused (the fingerprint differs) instead of silently mixing runs.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptyframe.errors import DataValidationError
from ptyframe.io.atomic import atomic_path
from ptyframe.io.results import History
from ptyframe.state import ReconstructionState

#: Top-level config keys that do not change the computation (excluded from the fingerprint):
#: where and what is written (``output``: dir, images, checkpoints, overwrite, skip_done),
#: whether this is a resume, and how progress is shown.
IGNORED_KEYS = ("output", "resume", "progress", "progress_every_s")


def fingerprint(config_yaml: str) -> str:
    """Return a short hash of the parts of the config that define the computation.

    The YAML is parsed and the ``IGNORED_KEYS`` are dropped, so resuming with the directory
    given as ``output.dir=`` or as ``hydra.run.dir=`` (or with images switched off) matches,
    while any setting that changes the result (engine, data, seed, dtype, ...) does not.
    """
    import json

    import yaml

    try:
        tree = yaml.safe_load(config_yaml)
    except yaml.YAMLError:
        tree = None
    if isinstance(tree, dict):
        kept = {k: v for k, v in tree.items() if k not in IGNORED_KEYS}
        text = json.dumps(kept, sort_keys=True, default=str)
    else:
        text = config_yaml
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def newest_checkpoint(root: str) -> str | None:
    """Return the newest ``checkpoint.h5`` under ``root/outputs`` and ``root/multirun``."""
    import glob

    found = [
        p
        for pattern in ("outputs/*/*/checkpoint.h5", "multirun/*/*/*/checkpoint.h5")
        for p in glob.glob(os.path.join(root, pattern))
    ]
    return max(found, key=os.path.getmtime) if found else None


def moved(obj: Any, device: str | torch.device) -> Any:
    """Return ``obj`` with every tensor in it (nested dicts, lists, tuples) on ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to(device)
    if isinstance(obj, dict):
        return {k: moved(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(moved(v, device) for v in obj)
    return obj


def _blob(obj: Any) -> np.ndarray:
    """Serialise ``obj`` with its tensors on the CPU (a file that loads without a GPU)."""
    buf = io.BytesIO()
    torch.save(moved(obj, "cpu"), buf)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


def _unblob(arr: np.ndarray) -> Any:
    return torch.load(io.BytesIO(arr.tobytes()), map_location="cpu", weights_only=False)


@dataclass
class Checkpoint:
    """A restored checkpoint."""

    state: ReconstructionState
    engine_state: dict[str, Any]
    history: History
    next_epoch: int
    rng: dict[str, Any]
    fingerprint: str


def save_checkpoint(
    path: str | os.PathLike,
    state: ReconstructionState,
    engine_state: dict[str, Any],
    history: History,
    next_epoch: int,
    config_fingerprint: str,
) -> None:
    """Write ``checkpoint.h5`` atomically (replacing the previous one)."""
    import h5py

    rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}
    with atomic_path(path, overwrite=True) as tmp, h5py.File(tmp, "w") as f:
        for key, value in state.numpy().items():
            f.create_dataset(f"state/{key}", data=value)
        for key, value in history.arrays().items():
            f.create_dataset(f"history/{key}", data=value)
        f["engine_state"] = _blob(engine_state)
        f["rng"] = _blob(rng)
        f.attrs["next_epoch"] = int(next_epoch)
        f.attrs["fingerprint"] = config_fingerprint


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> Checkpoint:
    """Read ``checkpoint.h5``; raise ``DataValidationError`` if it is missing or damaged."""
    import h5py

    if not os.path.isfile(path):
        newest = newest_checkpoint(os.getcwd())
        where = (
            f"output.dir={os.path.relpath(os.path.dirname(newest))} (the newest interrupted run)"
            if newest is not None and os.path.abspath(newest) != os.path.abspath(path)
            else "output.dir=<the directory of the interrupted run>"
        )
        raise DataValidationError(
            f"{path}: no checkpoint to resume from. Run without resume=true, or resume with {where}"
        )
    try:
        with h5py.File(path, "r") as f:
            s = f["state"]
            extras = {
                k: torch.from_numpy(np.asarray(v[()])) for k, v in s.get("extras", {}).items()
            }
            state = ReconstructionState(
                torch.from_numpy(np.asarray(s["object"][()])).to(device),
                torch.from_numpy(np.asarray(s["probe"][()])).to(device),
                torch.from_numpy(np.asarray(s["positions_px"][()])).to(device),
                moved(extras, device),
            )
            hist = History.from_arrays({k: np.asarray(v[()]) for k, v in f["history"].items()})
            return Checkpoint(
                state,
                moved(_unblob(np.asarray(f["engine_state"][()])), device),
                hist,
                int(f.attrs["next_epoch"]),
                _unblob(np.asarray(f["rng"][()])),
                str(f.attrs["fingerprint"]),
            )
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise DataValidationError(
            f"{path}: checkpoint is damaged or incomplete ({type(exc).__name__}: {exc}). "
            "Delete it and start again, or restore a copy"
        ) from exc


def restore_rng(rng: dict[str, Any]) -> None:
    """Put the torch and NumPy global RNGs back to the saved states."""
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
