"""Find measured results in docstrings and comments: they belong in the manual's results pages.

A docstring states what code does, the maths it implements and the paper it comes from; a
number it *measured* (an FRC, seconds, a speed-up, a percentage of time, a memory peak) goes
stale the day the code or the machine changes, so it lives in ``docs/results/`` instead,
written by a benchmark with its date, commit and machine. This module scans the docstrings
(module, class, function) and the comments of ``ptyframe/`` and ``plugins/`` for four kinds
of text:

* ``figure``: a result-type figure (a metric value, a duration, a speed ratio, a percentage,
  a memory size, a PSNR in dB, a throughput, "measured ... 0.93");
* ``readme``: a citation of a README section by title (the manual links replace them);
* ``history``: narration of what the code was before ("the former ...", "the old spelling");
* ``machine``: facts about the machine the code was written on ("a busy 2-core machine").

Paper constants, defaults and the definitions of the conventions are not results: the
explicit ``ALLOWED`` list names the few lines that look like one but are not. Folders other
branches are rewriting are skipped for now (``SKIPPED``) and listed with their count.

Run ``python tests/docstring_figures.py`` for the list (``--all`` includes the skipped
folders); ``tests/test_docstrings.py`` asserts that none is left outside ``SKIPPED``.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import sys
import tokenize
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: What is scanned (every ``*.py`` below these folders).
SCANNED = ("ptyframe", "plugins")
#: Folders being rewritten on other branches: reported, not failed (remove once they land).
SKIPPED: tuple[str, ...] = ()

_NUM = r"(?<![\w.])[-+~]?\d+(?:\.\d+)?"
_DEC = r"(?<![\w.])[-+~]?\d*\.\d+"

#: (kind, label, pattern): every match is one finding.
PATTERNS: list[tuple[str, str, re.Pattern[str]]] = [
    (
        "figure",
        "metric value",
        re.compile(
            r"\b(?:FRC|NRMSE|SSIM|PSNR|data errors?|Jacobian norm|Lip\(D\))\b[^.\d\n;]{0,24}?"
            + _DEC
        ),
    ),
    (
        "figure",
        "duration",
        re.compile(_NUM + r"\s?(?:s|ms|us|µs|min|minutes|seconds|h|hours)\b(?!\))"),
    ),
    ("figure", "speed ratio", re.compile(_NUM + r"\s?x(?![\w\d])(?!\s*\d)")),
    ("figure", "times faster", re.compile(r"\b(?:times|x) (?:faster|slower)\b")),
    (
        "figure",
        "percentage",
        re.compile(
            _NUM + r"\s?%\s*(?:in\b|of (?:the |its )?(?:time|sweep|step|run|best|grid)|faster|"
            r"slower|longer|shorter|more|less|better|worse|by\b)"
        ),
    ),
    ("figure", "memory", re.compile(_NUM + r"\s?(?:KB|MB|GB|KiB|MiB|GiB)\b")),
    ("figure", "decibels", re.compile(_NUM + r"\s?dB\b")),
    ("figure", "throughput", re.compile(r"GFLOP/s|\bepochs/s\b|\bpatterns/s\b|\bsweeps/s\b")),
    ("figure", "measured", re.compile(r"\bmeasur(?:ed|es)\b[^.\n]{0,60}?" + _DEC)),
    (
        "figure",
        "outcome",
        re.compile(
            r"\b(?:scor(?:ed|es)|reach(?:ed|es)|gave|ended at|stuck at|against|versus|vs\.?)"
            r"\b[^.\d\n;]{0,30}?" + _DEC
        ),
    ),
    (
        "figure",
        "divergence",
        re.compile(r"\b(?:diverged|exploded|stalled)\b[^.\n]{0,30}?\b(?:sweep|epoch)s? \d+"),
    ),
    (
        "readme",
        "README section",
        re.compile(r"\bREADME(?:'s)?\b(?!\.md)|\bsee the benchmarks?\b", re.IGNORECASE),
    ),
    (
        "history",
        "history",
        re.compile(
            r"\bformer(?:ly)?\b|\bold spelling\b|\bused to\b|\bpreviously\b|"
            r"\bthe old (?:default|code|metric|loop|behaviou?r)s?\b|\bbefore (?:the|this) "
            r"(?:fix|change)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "machine",
        "machine fact",
        re.compile(
            r"\b\d+-core\b|\bbusy (?:machine|CPU|cores?|threads?)\b|\bshared machine\b|"
            r"\bthis machine\b|\bload average\b|\bon a busy\b",
            re.IGNORECASE,
        ),
    ),
]

#: Text that looks like a result but is a paper constant, a default or a definition:
#: (path suffix, substring of the matched line). Keep it short; say why each is here.
ALLOWED: list[tuple[str, str]] = [
    # the progress line's format, an example of what it prints
    ("ptyframe/progress.py", "epoch 37/100  data error 0.1234"),
    # test set-ups: how long a test makes a rank wait, the exchange size a test chooses
    ("plugins/ptyframe-mpi/tests/test_mpi.py", "rank 1 starts 1.2 s after rank 0"),
    ("plugins/ptyframe-mpi/tests/test_mpi_tier.py", "0.002 MiB: three rows per piece"),
]

#: Inline code (``alpha = 0.1``, ``sqrt 2 s``) states settings and formulas, not results.
_CODE = re.compile(r"``.*?``")

#: A match right after these words is a default or a setting, not a result.
_SETTING = re.compile(
    r"(?:default(?:s| is| of)?|every|at most|at least|fewer than|more than|timeout|limit|"
    r"after|within)"
    r"\s*[:=(]?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    """One suspicious text in a docstring or comment."""

    path: str
    line: int
    kind: str
    label: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.kind}: {self.label}] {self.text}"


def _texts(source: str) -> list[tuple[int, str]]:
    """Return (first line, text) of every docstring and comment of ``source``."""
    out: list[tuple[int, str]] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                out.append((body[0].lineno, body[0].value.value))
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out.append((tok.start[0], tok.string))
    return out


def _allowed(path: str, line_text: str) -> bool:
    return any(path.endswith(p) and s in line_text for p, s in ALLOWED)


def scan_source(path: str, source: str) -> list[Finding]:
    """Return every finding in the docstrings and comments of one file's ``source``."""
    found: list[Finding] = []
    for first, text in _texts(source):
        for offset, line in enumerate(text.splitlines()):
            if _allowed(path, line):
                continue
            plain = _CODE.sub("``code``", line)
            for kind, label, pattern in PATTERNS:
                for m in pattern.finditer(plain):
                    if kind == "figure" and _SETTING.search(plain[: m.start()]):
                        continue
                    found.append(Finding(path, first + offset, kind, label, line.strip()))
    return found


def files(include_skipped: bool = False) -> list[Path]:
    """Return the scanned Python files (without the ``SKIPPED`` folders unless asked)."""
    out = []
    for top in SCANNED:
        for p in sorted((REPO / top).rglob("*.py")):
            rel = p.relative_to(REPO).as_posix()
            if any(part.startswith(".") or part == "build" for part in p.parts):
                continue
            if not include_skipped and skipped(rel):
                continue
            out.append(p)
    return out


def skipped(rel: str) -> bool:
    """Return True when ``rel`` (a repository path) lies in a ``SKIPPED`` folder."""
    return any(rel == s or rel.startswith(s + "/") for s in SKIPPED)


def scan(include_skipped: bool = False) -> list[Finding]:
    """Return the findings of every scanned file."""
    out: list[Finding] = []
    for p in files(include_skipped):
        rel = p.relative_to(REPO).as_posix()
        out.extend(scan_source(rel, p.read_text()))
    return out


def summary(findings: list[Finding]) -> str:
    """Return counts per kind and per folder."""
    kinds = Counter(f.kind for f in findings)
    folders = Counter(f.path.rsplit("/", 1)[0] for f in findings)
    lines = [
        f"{len(findings)} findings: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    ]
    lines += [f"  {n:4d}  {d}/" for d, n in sorted(folders.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the findings; exit 1 when any is outside the skipped folders."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--all", action="store_true", help="include the skipped folders")
    ap.add_argument("--quiet", action="store_true", help="counts only")
    args = ap.parse_args(argv)
    found = scan(include_skipped=args.all)
    if not args.quiet:
        print("\n".join(str(f) for f in found))
    print(summary(found))
    left = [f for f in scan(include_skipped=True) if skipped(f.path)]
    print(f"left in the skipped folders ({', '.join(SKIPPED)}): {len(left)}")
    return 1 if any(not skipped(f.path) for f in found) else 0


if __name__ == "__main__":
    sys.exit(main())
