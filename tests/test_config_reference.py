"""The manual's configuration reference is generated from the registry and misses nothing.

``docs/_ext/configref.py`` renders every registered component with its config fields, types,
defaults, ranges and one-line docs. These tests would catch a component left out of the page
(a new kind, a plugin's engine), a field left out of a component's table, and a range reader
that no longer reads the checks (``epie.alpha`` is refused outside (0, 2) by its
``__post_init__``; the page must say so).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ptyframe.errors import ConfigError
from ptyframe.plugins import default_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "_ext"))
import configref


@pytest.fixture(scope="module")
def page_and_registry():
    registry = default_registry()
    return configref.render(registry), registry


def _section(page: str, kind: str, name: str) -> str:
    start = page.index(f"# {kind} `{name}`")
    end = page.find("\n# ", start + 1)
    return page[start : end if end > 0 else len(page)]


def test_every_registered_component_and_field_is_in_the_reference(page_and_registry) -> None:
    page, registry = page_and_registry
    missing = []
    for comp in registry:
        if f"# {comp.kind} `{comp.name}`" not in page or f"[`{comp.name}`](config/" not in page:
            missing.append(f"{comp.kind}:{comp.name}")
            continue
        text = _section(page, comp.kind, comp.name)
        for f in dataclasses.fields(comp.config_cls):
            if f.name != "name" and f"| `{f.name}` |" not in text:
                missing.append(f"{comp.kind}:{comp.name}.{f.name}")
    assert not missing, "not in the configuration reference: " + ", ".join(missing)
    kinds = {c.kind for c in registry}
    assert {"engine", "forward_model", "loss", "optimizer", "denoiser", "callback"} <= kinds


def test_ranges_are_read_from_the_checks(page_and_registry) -> None:
    page, _ = page_and_registry
    epie = _section(page, "engine", "epie")
    assert re.search(r"\| `alpha` \| `float` \| `0.25` \| \(0, 2\) \|", epie), epie
    assert re.search(r"\| `epochs` \| `int` \| `100` \| >= 0 \|", epie), epie
    assert "[0, 0.5)" in _section(page, "engine", "pine")  # rho in [0, 1/2)


def test_declared_range_and_dependent_bound() -> None:
    """A ``metadata["range"]`` is shown as declared; a bound that is another field is named."""

    @dataclass
    class Cfg:
        name: str = "x"
        #: The lower one.
        low: float = 0.5
        high: float = 2.0  # the upper one
        frac: float = field(default=0.1, metadata={"range": "[0, 1]"})

        def __post_init__(self) -> None:
            if self.high < self.low:
                raise ConfigError(
                    f"x.high = {self.high} is out of range; set it within [{self.low}, inf)"
                )

    rows = {r.name: r for r in configref.field_rows(Cfg)}
    assert rows["frac"].range == "[0, 1]"
    assert rows["high"].range == ">= low"
    assert rows["low"].doc == "The lower one."
    assert rows["high"].doc == "the upper one"
