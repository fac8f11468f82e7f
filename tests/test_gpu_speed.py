"""benchmarks/gpu_speed.py: a tiny CPU run, and the same on the virtual CUDA device.

Speed is not asserted (benchmarks print it); these check that the script runs every path it
will take on a GPU (timing, time box, host-resident patterns, the table) before a device
session spends its minutes on it.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import torch

from virtual_cuda import VirtualCuda

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_speed.py"
ARGS = ["--small", "--cases", "64x32", "--budget-s", "0.2", "--max-epochs", "3"]


def _bench():
    spec = importlib.util.spec_from_file_location("gpu_speed", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_speed"] = mod  # its dataclass looks its module up
    spec.loader.exec_module(mod)
    return mod


def _rows(text: str) -> dict[tuple[str, str], list[str]]:
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 8 and cells[0] not in ("engine", "---"):
            out[(cells[0], cells[2])] = cells
    return out


def test_a_small_cpu_run_times_each_engine(tmp_path) -> None:
    out = tmp_path / "table.md"
    engines = ["epie", "lsqml"]
    text = _bench().main([*ARGS, "--device", "cpu", "--engines", *engines, "--out", str(out)])
    rows = _rows(text)
    assert set(rows) == {("epie", "device"), ("lsqml", "device")}
    for cells in rows.values():
        assert 1 <= int(cells[3]) <= 3 and float(cells[4].rstrip("*")) > 0
    assert out.read_text().strip() == text.strip()


def test_the_cuda_paths_run_on_the_virtual_device() -> None:
    """``--device cuda`` with host-resident patterns: no row fails (memory calls faked)."""
    fake = {
        "empty_cache": lambda: None,
        "reset_peak_memory_stats": lambda *a: None,
        "max_memory_allocated": lambda *a: 2**30,
        "get_device_properties": lambda i: SimpleNamespace(name="virtual", total_memory=2**34),
    }
    with VirtualCuda(), mock.patch.multiple(torch.cuda, **fake):
        text = _bench().main(
            [*ARGS, "--device", "cuda", "--engines", "lsqml", "epie", "--patterns-on-host"]
        )
    rows = _rows(text)
    assert set(rows) == {("lsqml", "device"), ("lsqml", "host"), ("epie", "device")}
    assert not any("failed" in c[4] for c in rows.values()), text
    assert all(c[7] == "1.00" for c in rows.values())
    assert re.search(r"cuda \(virtual, 16 GiB\)", text)
