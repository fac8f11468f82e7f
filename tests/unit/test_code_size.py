"""Functions in ``ptyframe/`` stay under 80 lines and modules under 800 (an AST count).

A function's length runs from its ``def`` line to its last line, docstring and nested
functions included (decorators not). ``TOO_LONG_FOR_NOW`` lists known offenders (none
today); each entry says why, and the test fails when an entry is no longer needed, so the
list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 800

#: ``(file, qualified function name): why it may stay long for now``.
TOO_LONG_FOR_NOW: dict[tuple[str, str], str] = {}


def function_lengths(path: Path) -> dict[str, int]:
    """Return ``{qualified name: lines}`` of every function and method in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    out: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                out[name] = child.end_lineno - child.lineno + 1
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _sources() -> list[Path]:
    return sorted((REPO / "ptyframe").rglob("*.py"))


def test_no_function_over_80_lines() -> None:
    long, seen = [], set()
    for path in _sources():
        rel = path.relative_to(REPO).as_posix()
        for name, n in function_lengths(path).items():
            if n <= MAX_FUNCTION_LINES:
                continue
            if (rel, name) in TOO_LONG_FOR_NOW:
                seen.add((rel, name))
                continue
            long.append(f"{rel}::{name} is {n} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them):\n" + "\n".join(long)
    stale = sorted(set(TOO_LONG_FOR_NOW) - seen)
    assert not stale, f"no longer over {MAX_FUNCTION_LINES} lines, remove from the list: {stale}"


def test_no_module_over_800_lines() -> None:
    long = [
        f"{p.relative_to(REPO).as_posix()} is {n} lines"
        for p in _sources()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them):\n" + "\n".join(long)


def test_the_count_includes_docstring_and_nested_functions(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(5))
    src.write_text(
        f'class A:\n    def f(self):\n        """Doc.\n\n        More.\n        """\n'
        f"        def g():\n            return 1\n\n        return g\n\n\n"
        f"def h():\n{body}\n"
    )
    assert function_lengths(src) == {"A.f": 9, "A.f.g": 2, "h": 6}
