"""Read ptyframe's docstrings as the plain text they are written in, not as reStructuredText.

The docstrings write maths in ASCII (``|P|^2``, ``a * b``, ``x_k``), which reStructuredText
would read as substitutions, emphasis and link targets. This hook escapes those characters
outside inline code (double backticks) and outside literal blocks (after ``::``), and turns
an indented block that follows a paragraph without ``::`` (a formula, a command) and a
simple table (``=== ===`` borders) into literal blocks, so every docstring renders as
written.
"""

from __future__ import annotations

import re
from typing import Any

_BULLET = re.compile(r"^(\s*)([*-]|\d+\.|#\.)(\s+)")
_BORDER = re.compile(r"^\s*=+(\s+=+)+\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _escape_plain(p: str) -> str:
    p = p.replace("\\", "\\\\")
    p = p.replace("|", "\\|").replace("*", "\\*")
    p = re.sub(r"(?<=\w)_(?=\W|$)", r"\\_", p)
    p = re.sub(r"(?<![\w`])_(?=\w)", r"\\_", p)
    return p.replace("`", "\\`")


class _Escaper:
    """Escape reST markup outside inline code; a code span may run over several lines."""

    def __init__(self) -> None:
        self.in_code = False

    def __call__(self, text: str) -> str:
        parts = text.split("``")
        out = []
        for i, part in enumerate(parts):
            if i > 0:
                out.append("``")
                self.in_code = not self.in_code
            out.append(part if self.in_code else _escape_plain(part))
        return "".join(out)


def _line(line: str, escape: _Escaper) -> str:
    m = _BULLET.match(line)
    if m and not escape.in_code:
        return m.group(0) + escape(line[m.end() :])
    return escape(line)


def plain(lines: list[str]) -> list[str]:
    """Return the docstring lines made safe for reStructuredText."""
    out: list[str] = []
    literal_at: int | None = None  # indentation of the paragraph that opened a literal block
    para_indent = 0
    prev_blank = True
    in_bullet = False
    escape = _Escaper()
    borders = 0  # inside a simple table: the border lines seen (it ends at the third)
    forced = False  # a literal block indented by this hook (its source was not)
    opened_at = 0  # where the lines after the one that opened a literal block start
    for line in lines:
        blank = not line.strip()
        if borders or (_BORDER.match(line) and literal_at is None):
            # a simple table, shown as written (escaping would shift its columns)
            if not borders:
                out.extend(["", "::", ""])
            borders += bool(_BORDER.match(line))
            out.append("    " + line)
            if borders == 3:
                borders = 0
                out.append("")
                prev_blank = True
            continue
        if literal_at is not None:
            if blank and forced:
                forced = False
                literal_at = None
            elif blank or _indent(line) > literal_at or forced:
                out.append(("    " + line) if forced else line)
                prev_blank = blank
                continue
            elif not any(x.strip() for x in out[opened_at:]):
                # ``::`` followed by a paragraph that is not indented (a docstring's summary
                # line ends with ``::``): that paragraph is the literal block
                forced = True
                out.append("    " + line)
                prev_blank = False
                continue
            literal_at = None
            if out and out[-1].strip():
                out.append("")
            prev_blank = True
        if blank:
            out.append(line)
            prev_blank = True
            in_bullet = False
            escape.in_code = False
            continue
        ind = _indent(line)
        if prev_blank or ind < para_indent:
            para_indent = ind
            in_bullet = bool(_BULLET.match(line))
        elif ind > para_indent and not in_bullet and not escape.in_code:
            # an indented block right after a paragraph: a literal block
            out.extend(["", "::", ""])
            out.append(line)
            literal_at = para_indent
            prev_blank = False
            continue
        elif _BULLET.match(line) and ind >= para_indent:
            in_bullet = True
            if out and out[-1].strip() and not _BULLET.match(out[-1]) and not in_bullet:
                out.append("")
        text = _line(line, escape)
        if line.rstrip().endswith("::"):
            literal_at = ind
            text = text.rstrip()
            out.append(text)
            opened_at = len(out)
            out.append("")
            prev_blank = True
            continue
        out.append(text)
        prev_blank = False
    return out


def _process(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    if not name.startswith(("ptyframe", "ptyframe_")):
        return
    lines[:] = plain(lines)


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point."""
    app.connect("autodoc-process-docstring", _process, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
