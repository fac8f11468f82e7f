"""Every name a benchmark script imports from the project exists (read, not run).

The benchmark scripts are not imported by the tests (each runs for minutes), so a name renamed or
removed in ``ptyframe`` or ``benchmarks/_lib`` broke them silently: ``real_experiments.py`` and
``correction_cost.py`` imported a ``StepRaster`` that a merge had removed, and failed at their
first line. This test reads each script's ``from X import a, b`` statements (``X`` in ``ptyframe``
or in ``benchmarks``: ``_lib.*``, the peers' ``compare``) and checks that ``X`` is a module of the
tree defining ``a`` and ``b`` at its top level (or a package holding them as submodules). It
would catch any such rename before a user runs the script.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
SCRIPTS = sorted(p for p in BENCH.rglob("*.py") if ".venv" not in p.parts)


def _module_file(module: str, script: Path) -> Path | None:
    """Return the file of ``module`` as the script would import it, or None if it is not ours."""
    parts = module.split(".")
    if parts[0] == "ptyframe":
        roots = [ROOT]
    else:  # the scripts put benchmarks/ and benchmarks/peers on sys.path
        roots = [BENCH, BENCH / "peers", script.parent]
    for root in roots:
        base = root.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _top_level_names(path: Path) -> set[str]:
    """Return the names a module defines or imports at its top level (and in ``if`` blocks)."""
    names: set[str] = set()
    body = list(ast.parse(path.read_text()).body)
    while body:
        node = body.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try)):
            body.extend(node.body)
            body.extend(getattr(node, "orelse", []))
            for h in getattr(node, "handlers", []):
                body.extend(h.body)
    return names


def _imports(script: Path) -> list[tuple[str, str, int]]:
    """Return ``(module, name, line)`` of every absolute ``from module import name``."""
    out = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.extend((node.module, a.name, node.lineno) for a in node.names if a.name != "*")
    return out


def test_the_scripts_are_found() -> None:
    """The list is not empty by accident (the real-experiments script is among them)."""
    assert BENCH / "real_experiments.py" in SCRIPTS and len(SCRIPTS) > 20


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(BENCH)))
def test_every_imported_name_exists(script: Path) -> None:
    missing = []
    for module, name, line in _imports(script):
        path = _module_file(module, script)
        if path is None:
            continue  # a third-party package, or a peer's (run in its own venv)
        if name in _top_level_names(path):
            continue
        if path.name == "__init__.py" and _module_file(f"{module}.{name}", script) is not None:
            continue  # a submodule of a package
        missing.append(f"line {line}: from {module} import {name}")
    assert not missing, f"{script.relative_to(ROOT)}: " + "; ".join(missing)
