"""Code and docs cite only what the repository holds: no working notes, no paths outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Files that are no part of this repository, and absolute paths of the machine it was made on.
OUTSIDE = re.compile(r"\b(ENVIRONMENT|NOTES|PEERS|DESIGN)\.md\b|(?<![\w.])/work/|\bshared/")
SCANNED = ("ptyframe/", "plugins/", "benchmarks/", "docs/", "conf/", "README.md", "Makefile")


def _tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", *SCANNED], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: scan the tree
        out = [
            str(p.relative_to(REPO))
            for s in SCANNED
            for p in ([REPO / s] if (REPO / s).is_file() else (REPO / s).rglob("*"))
            if p.is_file()
        ]
    return [REPO / f for f in out if (REPO / f).suffix not in {".pt", ".npz", ".h5", ".png"}]


def test_no_citation_of_files_outside_the_repository() -> None:
    bad = []
    for path in _tracked_text_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for i, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                bad.append(f"{path.relative_to(REPO)}:{i}: {line.strip()[:100]}")
    assert not bad, "cites what the repository does not hold:\n" + "\n".join(bad)
