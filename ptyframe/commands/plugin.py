"""Offer the core's subcommands through the ``ptyframe_commands`` hook."""

from __future__ import annotations

from ptyframe.commands import halfset, listing, reconstruct, simulate
from ptyframe.hookspecs import hookimpl


@hookimpl
def ptyframe_commands() -> dict[str, object]:
    """Return ``simulate``, ``reconstruct``, ``plugins`` and ``halfset``."""
    return {
        "simulate": simulate.main,
        "reconstruct": reconstruct.main,
        "plugins": listing.main,
        "halfset": halfset.main,
    }
