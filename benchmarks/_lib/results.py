"""Write a benchmark's table as a results page of the manual (``docs/results/NAME.md``).

Every measured number of the project lives in such a page, never in a docstring. A page opens
with its stamp: the date, the commit (with ``+dirty`` when the tree had changes), the machine
(cores, CPU model, memory, GPU if any), the load average at the start, and the exact command
that made it, so a reader can make it again and see whether it still holds.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: The repository root (``benchmarks/_lib/results.py`` -> ``..``/``..``).
ROOT = Path(__file__).resolve().parents[2]
#: Where results pages are written.
RESULTS_DIR = ROOT / "docs" / "results"


def commit() -> str:
    """Return the short commit hash of the tree, with ``+dirty`` when it has changes.

    Changes to the results pages themselves (``docs/results/``) do not count: a run of
    several benchmarks rewrites them one after another, and they change no measured code.
    """
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(ROOT),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)docs/results",
            ],  # fmt: skip
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def cpu_model() -> str:
    """Return the CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gib() -> float:
    """Return the machine's memory in GiB (0 when unknown)."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0.0
    return pages * size / 2**30


def gpu_name() -> str | None:
    """Return the CUDA device's name when torch sees one, else None."""
    try:
        import torch

        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except Exception:  # a stamp must never fail the benchmark
        return None
    return None


def machine() -> str:
    """Return one line describing this machine (cores, CPU, memory, GPU)."""
    gpu = gpu_name()
    text = f"{os.cpu_count()} cores, {cpu_model()}, {memory_gib():.0f} GiB"
    return text + (f", GPU {gpu}" if gpu else ", no GPU")


def load_average() -> str:
    """Return the 1-minute load average (``-`` where the OS has none)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "-"


@dataclass
class Stamp:
    """When, where and how a page was made (taken when the benchmark starts)."""

    date: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    )
    commit: str = field(default_factory=commit)
    machine: str = field(default_factory=machine)
    load: str = field(default_factory=load_average)
    command: str = field(default_factory=lambda: shlex.join(["python", *sys.argv]))

    def markdown(self) -> str:
        """Return the stamp as a Markdown list."""
        return (
            f"- date: {self.date}\n"
            f"- commit: `{self.commit}`\n"
            f"- machine: {self.machine}\n"
            f"- load average at start: {self.load}\n"
            f"- command: `{self.command}`\n"
        )


def write_page(
    name: str,
    title: str,
    body: str,
    stamp: Stamp,
    about: str = "",
    out_dir: Path | None = None,
) -> Path:
    """Write ``docs/results/NAME.md``: the title, ``about`` (what is measured, with which metric
    and which peers), the stamp, then ``body`` (Markdown tables); return its path.

    ``out_dir`` overrides the folder (tests write into a temporary one).
    """
    folder = RESULTS_DIR if out_dir is None else Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    parts = [f"# {title}\n", about.strip() + "\n" if about.strip() else "", stamp.markdown(), body]
    path.write_text("\n".join(p for p in parts if p).rstrip() + "\n")
    return path


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """Return a Markdown table; floats as given (format them before)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
