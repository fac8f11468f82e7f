"""Register this subpackage's components (filled in as the components land)."""

from __future__ import annotations

from ptyframe.hookspecs import hookimpl


@hookimpl
def ptyframe_register(registry) -> None:  # noqa: ANN001
    """Register nothing yet."""
