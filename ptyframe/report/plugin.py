"""Register the ``ptyframe report`` subcommand (filled in as the report lands)."""

from __future__ import annotations

from ptyframe.hookspecs import hookimpl


@hookimpl
def ptyframe_commands() -> dict[str, object]:
    """Offer no command yet."""
    return {}
