"""Imports in ``ptyframe/`` flow one way: down the layers, never up (an AST check, no tool).

Every module belongs to a *unit*: its subpackage (``ptyframe.data``) or top-level module
(``ptyframe.runner``); a few leaf modules that import nothing above ``errors`` are units of
their own (``LEAVES``) so that lower layers may use them. The layers, bottom first::

     1  errors, progress, state, data.geometry   facts: import nothing of ptyframe
     2  overrides, io.atomic                     helpers on errors
     3  registry                                 components by kind and name
     4  hookspecs                                the plugin API
     5  plugins                                  entry points -> registry
     6  physics, distributed, losses,            the components' maths (independent of
        regularizers, optimizers, denoise        each other)
     7  data                                     datasets, readers, measurements
     8  io                                       results, checkpoints, images, CXI output
     9  simulation                               phantoms, probes, scans, data=simulated
    10  engines                                  reconstruction algorithms
    11  metrics                                  FRC, NRMSE, half-set FRC
    12  initial                                  initial guesses
    13  config                                   the run's config schema
    14  compose                                  the run's composition (engine + collaborators)
    15  callbacks                                per-epoch behaviours of the run loop
    16  loop                                     the run loop
    17  runner                                   a whole run: data in, results out
    18  report                                   tables and figures over many runs
    19  cli                                      the console script: plugins, Hydra, dispatch
    20  commands                                 the core's subcommands (ptyframe_commands)
    21  ptyframe (the package root)              the facade: ptyframe.reconstruct/registry

A module may import its own unit and any unit of a lower layer; the units of one layer do
not import each other. Lazy imports inside functions count (they are dependencies all the
same), and so do imports under ``if TYPE_CHECKING:``. The exceptions are listed in
``EXCEPTIONS``, each with its reason. A new subpackage or top-level module needs a line in
``LAYERS`` (the test names it). Two more checks: no module imports another package's private
(``_name``) names, and the plugins under ``plugins/*/src`` import only public ptyframe names.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "ptyframe"

#: Bottom first; each entry is one layer: the units in it (without the ``ptyframe.`` prefix).
LAYERS: list[tuple[str, ...]] = [
    ("errors", "progress", "state", "data.geometry"),
    ("overrides", "io.atomic"),
    ("registry",),
    ("hookspecs",),
    ("plugins",),
    ("physics", "distributed", "losses", "regularizers", "optimizers", "denoise"),
    ("data",),
    ("io",),
    ("simulation",),
    ("engines",),
    ("metrics",),
    ("initial",),
    ("config",),
    ("compose",),  # ptyframe/compose.py (engines built with their collaborators)
    ("callbacks",),  # ptyframe/callbacks/ (the run loop's callbacks)
    ("loop",),  # ptyframe/loop.py
    ("runner",),
    ("report",),
    ("cli",),
    ("commands",),
    ("",),  # the package root, ptyframe/__init__.py: the public facade
]

#: Modules that form a unit of their own, below their package (they import only ``errors``).
LEAVES = ("data.geometry", "io.atomic")

#: ``(importing module, imported module, name): reason`` for the upward imports that stay.
EXCEPTIONS: dict[tuple[str, str, str], str] = {
    ("ptyframe.data.orientation", "ptyframe.runner", "reconstruct"): (
        "data=file orientation=auto decides the detector orientation by reconstructing: a few "
        "ePIE sweeps per candidate through runner.reconstruct (lazy, only for auto); it moves "
        "when the run's composition owns that choice"
    ),
    ("ptyframe.simulation.simulate", "ptyframe", "__version__"): (
        "`from ptyframe import __version__` for the file's provenance: the version string is "
        "defined in the package root, which Python has imported before any submodule"
    ),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def unit_of(module: str) -> str:
    """Return the unit of ``module`` (``""`` for the package root)."""
    rest = module.removeprefix("ptyframe").removeprefix(".")
    for leaf in LEAVES:
        if rest == leaf or rest.startswith(leaf + "."):
            return leaf
    return rest.split(".")[0]


LAYER_OF: dict[str, int] = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _resolve(name: str) -> str:
    """Return the ptyframe module that ``name`` (a module or a name in one) comes from."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(path: Path) -> Iterator[tuple[int, str, str]]:
    """Yield ``(line, imported ptyframe module, imported name or "")`` for every import."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ptyframe":
                    yield node.lineno, _resolve(alias.name), ""
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "ptyframe":
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in MODULES:
                    yield node.lineno, full, ""
                else:
                    yield node.lineno, _resolve(node.module), alias.name


def _label(unit: str) -> str:
    return f"ptyframe.{unit}" if unit else "ptyframe (the package root)"


def test_every_unit_has_a_layer() -> None:
    missing = sorted({unit_of(m) for m in MODULES} - set(LAYER_OF))
    assert not missing, (
        f"no layer for {', '.join(map(_label, missing))}: add it to LAYERS in {__file__}"
    )


def test_imports_flow_down_the_layers() -> None:
    bad: list[str] = []
    used: set[tuple[str, str, str]] = set()
    for module, path in MODULES.items():
        src = unit_of(module)
        for line, target, name in imports_of(path):
            dst = unit_of(target)
            if dst == src or src not in LAYER_OF or dst not in LAYER_OF:
                continue  # a unit without a layer fails test_every_unit_has_a_layer
            if LAYER_OF[dst] < LAYER_OF[src]:
                continue
            if (module, target, name) in EXCEPTIONS:
                used.add((module, target, name))
                continue
            where = "the same layer as" if LAYER_OF[dst] == LAYER_OF[src] else "a layer above"
            rel = path.relative_to(REPO)
            what = f"{target}.{name}" if name else target
            bad.append(
                f"{rel}:{line} imports {what} ({_label(dst)} is in layer "
                f"{LAYER_OF[dst] + 1}, {where} {_label(src)}, layer {LAYER_OF[src] + 1})"
            )
    assert not bad, "imports that go up (or across) the layers:\n" + "\n".join(bad)
    stale = sorted(set(EXCEPTIONS) - used)
    assert not stale, f"EXCEPTIONS no longer needed, remove them: {stale}"


def test_no_private_names_imported_across_packages() -> None:
    bad = []
    for module, path in MODULES.items():
        for line, target, name in imports_of(path):
            private = name.startswith("_") and not name.startswith("__")
            if private and unit_of(target) != unit_of(module):
                rel = path.relative_to(REPO)
                bad.append(f"{rel}:{line} imports {target}.{name}")
        bad += _private_attributes(path)
    assert not bad, "private names used outside their package (make them public):\n" + "\n".join(
        bad
    )


def _private_attributes(path: Path) -> list[str]:
    """Return ``module._name`` uses of a ptyframe module of another unit bound in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    here = unit_of(_module_name(path))
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "ptyframe" and a.asname:
                    bound[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if full in MODULES:
                    bound[a.asname or a.name] = full
    out = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and unit_of(bound[node.value.id]) != here
        ):
            rel = path.relative_to(REPO)
            out.append(f"{rel}:{node.lineno} uses {bound[node.value.id]}.{node.attr}")
    return out


def test_plugins_import_only_public_ptyframe_names() -> None:
    bad = []
    for path in sorted(REPO.glob("plugins/*/src/**/*.py")):
        for line, target, name in imports_of(path):
            parts = target.split(".") + ([name] if name else [])
            private = [p for p in parts if p.startswith("_") and not p.startswith("__")]
            if private:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {'.'.join(parts)}")
    assert not bad, "plugins import private ptyframe names:\n" + "\n".join(bad)


def test_the_check_sees_lazy_imports_and_names_the_offender(tmp_path: Path) -> None:
    """A lazy upward import in a function is found, with file, line and both layers."""
    src = tmp_path / "probe.py"
    src.write_text("def f():\n    from ptyframe.runner import run\n    return run\n")
    found = list(imports_of(src))
    assert found == [(2, "ptyframe.runner", "run")]
    assert LAYER_OF[unit_of("ptyframe.runner")] > LAYER_OF[unit_of("ptyframe.data.sources")]
    assert unit_of("ptyframe.data.geometry") == "data.geometry"
    assert unit_of("ptyframe") == "" and unit_of("ptyframe.engines.pie") == "engines"
