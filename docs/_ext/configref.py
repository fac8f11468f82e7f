"""Generate the configuration reference of the manual from the component registry.

Every registered component (``ptyframe.plugins.default_registry()``: the core's and every
installed plugin's) gets a section: its kind, name, provider, the command line that selects
it, its one-line doc, and a table of its config dataclass's fields with their types,
defaults, ranges and one-line docs. Nothing is written by hand, so the page cannot drift
from the code:

* **types and defaults** come from ``dataclasses.fields`` and the type hints;
* **docs** are the field's ``#:`` comment above it (as Sphinx reads attribute docs), else a
  plain comment above it or at the end of its line;
* **ranges** are what the config's own checks state: a field declared with
  ``metadata={"range": "..."}`` shows that text; otherwise the config class is built with
  out-of-range probe values and the ``ConfigError`` its ``__post_init__`` raises is read for
  the interval (``check_range``'s "must lie in (0.0, 2.0)") or the bound ("must be >= 1")
  it names for that field.

Used by ``docs/conf.py`` (``builder-inited`` writes ``docs/reference/configuration.md``, the
index, and ``docs/reference/config/<kind>-<name>.md``, one page per component) and by
``tests/test_config_reference.py`` (every registered component appears).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import math
import re
import textwrap
import tokenize
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

#: Where the generated page goes (relative to the docs folder).
PAGE = Path("reference") / "configuration.md"

#: Probe values tried in this order; the first refused one names the range.
_PROBES_FLOAT = (-1e9, 1e9, -1.0, 0.0, 1.0, 0.5)
_PROBES_INT = (-(10**9), 10**9, -1, 0, 1)

_INTERVAL = re.compile(r"(?:lie in|within|\bin)\s*([\[(])\s*([-+\w.]+)\s*,\s*([-+\w.]+)\s*([\])])?")
_BOUND = re.compile(r"(?:must be|be|need|\bis)?\s*([<>]=?)\s*([-+]?\d[\w.+-]*)")


@cache
def _class_comments(cls: type) -> dict[str, str]:
    """Return {field: doc} from the ``#:``/``#`` comments of one class's own source."""
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = src.splitlines()
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return {}
    cdef = tree.body[0]
    if not isinstance(cdef, ast.ClassDef):
        return {}
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
    out: dict[str, str] = {}
    for st in cdef.body:
        if not (isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)):
            continue
        above: list[str] = []
        ln = st.lineno - 1
        while ln in comments and lines[ln - 1].strip().startswith("#"):
            above.insert(0, comments[ln].lstrip("#:").strip())
            ln -= 1
        inline = ""
        for n in range(st.lineno, (st.end_lineno or st.lineno) + 1):
            if n in comments and not lines[n - 1].strip().startswith("#"):
                inline = comments[n].lstrip("#").strip()
        text = " ".join(above) if above else inline
        if text and not text.startswith(("fmt:", "noqa", "type:")):
            out[st.target.id] = text
    return out


def field_docs(cls: type) -> dict[str, str]:
    """Return {field: one-line doc} over the class and its bases (the nearest wins)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        docs.update(_class_comments(klass))
    return {k: _first_sentence(v) for k, v in docs.items()}


def _first_sentence(text: str) -> str:
    """Return the text up to the first ``.`` or ``;`` outside brackets (and the ``.``)."""
    text = " ".join(text.split())
    depth = 0
    for i, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(0, depth - 1)
        elif c in ".;" and depth == 0 and (i + 1 == len(text) or text[i + 1] == " "):
            return text[: i + 1] if c == "." else text[:i]
    return text


def _scalar(tp: Any) -> type | None:
    """Return ``int`` or ``float`` for a (possibly optional) numeric hint, else None."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = tuple(a for a in args if a is not type(None))
        if len(args) == 1:
            tp = args[0]
    if tp is bool:
        return None
    return tp if tp in (int, float) else None


def _num(text: str) -> str:
    """Write a bound as a reader would: ``0.0`` -> ``0``, ``inf`` kept."""
    try:
        value = float(text)
    except ValueError:
        return text
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:g}"


def _read_range(message: str, field: str) -> str:
    """Return the range a check's message states for ``field`` ('' if it names none)."""
    # the part of the message from the field's name on (compound messages name several)
    at = [m.start() for m in re.finditer(rf"(?<![\w]){re.escape(field)}(?![\w])", message)]
    text = message[at[0] :] if at else message
    text = text.split(";", 1)[1] if "out of range;" in text else text
    interval = _INTERVAL.search(text)
    bound = _BOUND.search(text)
    if interval and (not bound or interval.start() <= bound.start()):
        left, lo, hi, right = interval.groups()
        right = right or ")"
        lo, hi = _num(lo), _num(hi)
        if hi == "inf":
            return f"{'>' if left == '(' else '>='} {lo}"
        return f"{left}{lo}, {hi}{right}"
    if bound:
        return f"{bound.group(1)} {_num(bound.group(2))}"
    m = re.search(r"\b(needs?|only with)\b[^;(]*", message)
    return re.sub(r"\b[a-z_0-9]+\.(?=[a-z_])", "", m.group(0)).strip() if m else ""


def field_range(cls: type, f: dataclasses.Field, hint: Any) -> str:
    """Return the range of one field: its declared ``metadata['range']`` or its check's."""
    declared = f.metadata.get("range") if f.metadata else None
    if declared:
        return str(declared)
    kind = _scalar(hint)
    if kind is None:
        return ""

    text = _probe(cls, f.name, kind, {})
    return _name_dependence(cls, f.name, kind, text) if text else ""


def _probe(cls: type, name: str, kind: type, others: dict[str, Any]) -> str:
    """Return the range the first refused probe value's message states for ``name``."""
    from ptyframe.errors import PtyframeError

    for value in _PROBES_INT if kind is int else _PROBES_FLOAT:
        try:
            cls(**others, **{name: kind(value)})
        except PtyframeError as exc:
            message = str(exc)
            if not re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", message):
                continue  # the check names another field: no range of this one
            return _read_range(message, name)
        except Exception:  # a check that fails another way states no range
            continue
    return ""


def _name_dependence(cls: type, name: str, kind: type, text: str) -> str:
    """Write a bound that is another field's value as that field (``>= amplitude_min``).

    A bound equal to another numeric field's default is tested by moving that field: if
    the stated range moves with it, the bound is that field.
    """
    numbers = re.findall(r"-?\d[\d.e+-]*", text)
    for f in dataclasses.fields(cls):
        value = _default(f)
        if f.name == name or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        for number in numbers:
            if _num(number) != _num(str(value)):
                continue
            moved = value + (0.25 * abs(value) or 0.5)
            try:
                cls(**{f.name: type(value)(moved) if isinstance(value, float) else moved})
            except Exception:  # cannot move it: keep the number
                continue
            if _probe(cls, name, kind, {f.name: moved}) != text:
                text = text.replace(number, f.name, 1)
    return text


def _type_name(tp: Any) -> str:
    if isinstance(tp, str):
        return tp
    text = getattr(tp, "__name__", None) if not typing.get_args(tp) else None
    text = text or str(tp).replace("typing.", "")
    return re.sub(r"\b[\w.]+\.(\w+)", r"\1", text)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return "???"


def _show(value: Any) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return f"{type(value).__name__}(...)"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@dataclasses.dataclass
class FieldRow:
    """One row of a component's table."""

    name: str
    type: str
    default: str
    range: str
    doc: str


def field_rows(cls: type, prefix: str = "") -> list[FieldRow]:
    """Return the rows of a config class (nested dataclass fields as ``outer.inner``)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable hints: the annotations as written
        hints = {f.name: f.type for f in dataclasses.fields(cls)}
    docs = field_docs(cls)
    rows: list[FieldRow] = []
    for f in dataclasses.fields(cls):
        if f.name == "name" and not prefix:
            continue
        hint = hints.get(f.name, f.type)
        default = _default(f)
        rows.append(
            FieldRow(
                prefix + f.name,
                _type_name(hint),
                _show(default),
                field_range(cls, f, hint),
                docs.get(f.name, ""),
            )
        )
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            rows.extend(field_rows(type(default), prefix + f.name + "."))
    return rows


def _anchor(kind: str, name: str) -> str:
    return f"config-{kind}-{name}".replace("_", "-")


def _page_name(kind: str, name: str) -> str:
    return f"{kind}-{name}".replace("_", "-")


def component_page(comp: Any) -> str:
    """Return one component's page: its doc, where it comes from, its fields."""
    from ptyframe.registry import KINDS, choose_hint

    out = [f"({_anchor(comp.kind, comp.name)})=", f"# {comp.kind} `{comp.name}`\n"]
    cls = comp.config_cls
    doc = (cls.__doc__ or "").strip() or comp.doc
    if doc:
        out.append(_cell(doc.split("\n\n")[0]) + "\n")
    out.append(
        f"- kind: `{comp.kind}` (Hydra group `{KINDS[comp.kind]}`)\n"
        f"- choose with: `{choose_hint(comp.kind, comp.name)}`\n"
        f"- config class: `{cls.__module__}.{cls.__qualname__}`\n"
        f"- provider: `{comp.provider}`\n"
    )
    rows = field_rows(cls)
    if not rows:
        out.append("No fields besides its name.\n")
        return "\n".join(out) + "\n"
    out.append("| field | type | default | range | doc |\n|---|---|---|---|---|")
    for r in rows:
        out.append(
            f"| `{r.name}` | `{_cell(r.type)}` | `{_cell(r.default)}` | "
            f"{_cell(r.range)} | {_cell(r.doc)} |"
        )
    return "\n".join(out) + "\n"


def pages(registry: Any | None = None) -> dict[str, str]:
    """Return ``{path under docs/: Markdown}``: the index and one page per component."""
    from ptyframe.registry import KINDS, choose_hint

    if registry is None:
        from ptyframe.plugins import default_registry

        registry = default_registry()
    index = [
        "# Configuration reference\n",
        "Generated from the component registry each time the manual is built "
        "(`docs/_ext/configref.py`), so it lists exactly what is installed: every registered "
        "component of every kind, with the fields of its config dataclass, their types, "
        "defaults, ranges and one-line docs. A range is what the config's own check states (a "
        "value outside it is refused with a `ConfigError` before any work); an empty cell "
        "means the check states none. `ptyframe plugins` prints the same from the command "
        "line.\n",
    ]
    out: dict[str, str] = {}
    for kind in registry.kinds():
        names = registry.names(kind)
        if not names:
            continue
        index.append(f"## {kind}\n")
        index.append(f"Chosen with `{choose_hint(kind)}` (Hydra group `{KINDS[kind]}`).\n")
        index.append("| component | what it is | provider |\n|---|---|---|")
        toc = []
        for name in names:
            comp = registry.get(kind, name)
            page = _page_name(kind, name)
            out[f"reference/config/{page}.md"] = component_page(comp)
            doc = _cell(comp.doc or (comp.config_cls.__doc__ or "").strip().split("\n")[0])
            index.append(f"| [`{name}`](config/{page}.md) | {doc} | `{comp.provider}` |")
            toc.append(f"config/{page}")
        index.append("\n```{toctree}\n:hidden:\n:maxdepth: 1\n\n" + "\n".join(toc) + "\n```\n")
    out[str(PAGE)] = "\n".join(index) + "\n"
    return out


def render(registry: Any | None = None) -> str:
    """Return every page of the reference, one after another (the index first)."""
    got = pages(registry)
    return "\n".join([got[str(PAGE)], *(v for k, v in sorted(got.items()) if k != str(PAGE))])


def write(docs_dir: Path, registry: Any | None = None) -> list[Path]:
    """Write the pages under ``docs_dir`` (only those whose text changed; stale ones go)."""
    docs_dir = Path(docs_dir)
    got = pages(registry)
    folder = docs_dir / "reference" / "config"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.md"):
        if str(old.relative_to(docs_dir)) not in got:
            old.unlink()
    written = []
    for rel, text in got.items():
        path = docs_dir / rel
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point: write the page before the sources are read."""

    def _generate(app: Any) -> None:
        write(Path(app.srcdir))

    app.connect("builder-inited", _generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
