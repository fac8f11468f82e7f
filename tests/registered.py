"""The registered engines, for tests parametrised over the registry (no hand-kept lists)."""

from __future__ import annotations

from ptyframe.engines.backend import numba_available
from ptyframe.plugins import default_registry

REGISTRY = default_registry()
#: Every registered engine, by name.
ENGINES = sorted(c.name for c in REGISTRY if c.kind == "engine")
#: Those that reconstruct a ptychographic scan (``Capabilities.data``).
PTYCHO_ENGINES = [
    n for n in ENGINES if REGISTRY.get("engine", n).factory.capabilities.data == "ptychography"
]


def backends(name: str) -> list[str]:
    """Return the backends engine ``name`` declares that can run here."""
    caps = REGISTRY.get("engine", name).factory.capabilities
    return [b for b in caps.backends if b != "numba" or numba_available()]
