"""Keep numba's disk cache of compiled kernels in step with every source they compile from.

numba keys the disk cache of a ``cache=True`` function on the file that defines it (its
modification time and size). A kernel that calls a helper from another module (the PIE rule of
``ptyframe.engines.rules``, compiled into ``ptyframe.engines.kernels``) is cached with the
helper's code inside it, so a change of the helper alone leaves the cached kernel on the old
rule: an editable install updated by ``git pull`` would reconstruct with the previous update
rule, silently.

``flush_if_changed`` closes that gap: a stamp file beside the cache holds the SHA-256 of all
the sources the kernels depend on; when it differs from the sources of this run, the kernels'
cache indexes are flushed (numba recompiles them on first call and caches them again) and the
stamp is rewritten.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

_log = logging.getLogger(__name__)


def sources_digest(sources: Iterable[Path]) -> str:
    """Return the SHA-256 (hex) of the bytes of ``sources``, in the order given."""
    h = hashlib.sha256()
    for path in sources:
        h.update(Path(path).name.encode())
        h.update(Path(path).read_bytes())
    return h.hexdigest()


def _cache_of(dispatcher: Any) -> Any | None:
    """Return the numba cache object of a ``cache=True`` dispatcher, or None."""
    return getattr(dispatcher, "_cache", None)


def flush_if_changed(dispatchers: Iterable[Any], sources: Iterable[Path], tag: str) -> bool:
    """Flush the disk cache of ``dispatchers`` when ``sources`` changed since it was written.

    Call it after creating the dispatchers and before their first call (numba reads the cache
    on the first call). ``tag`` names the stamp file (one per group of kernels). Returns True
    when the caches were flushed. A cache folder that cannot be written (a read-only install)
    is left as it is: numba itself then falls back to compiling in memory.
    """
    dispatchers = list(dispatchers)
    caches = [c for c in (_cache_of(d) for d in dispatchers) if c is not None]
    if not caches:
        return False
    digest = sources_digest(sources)
    stamp = Path(caches[0].cache_path) / f"{tag}.sources.sha256"
    try:
        if stamp.is_file() and stamp.read_text().strip() == digest:
            return False
        for cache in caches:
            cache.flush()
        stamp.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=stamp.parent, prefix=stamp.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(digest + "\n")
        os.replace(tmp, stamp)  # atomic: ranks that start together see one stamp or the other
    except OSError as exc:  # a read-only cache folder: nothing was cached there to go stale
        _log.debug("numba cache stamp %s not written: %s", stamp, exc)
        return False
    _log.debug("numba cache of %s flushed: its sources changed", tag)
    return True


def compile_kernels(
    namespace: MutableMapping[str, Any],
    helpers: Iterable[str],
    kernels: Iterable[str],
    sources: Iterable[Path],
    tag: str,
    fastmath: bool | set[str] = False,
) -> SimpleNamespace:
    """Compile a module's kernels with numba (single-threaded, cached on disk) and return them.

    ``namespace`` is the module's ``globals()``: the ``helpers`` (functions the kernels call)
    are compiled first and bound there under their names, so that the kernels' calls reach the
    compiled helpers; then the ``kernels`` are compiled and their disk cache is flushed when
    any of ``sources`` (the module and every file its helpers come from) changed
    (``flush_if_changed``, stamp ``tag``).
    """
    import numba

    jit = numba.njit(cache=True, nogil=True, fastmath=fastmath, error_model="numpy")
    for name in helpers:  # the kernels call them: their names must be compiled first
        if not isinstance(namespace[name], numba.core.dispatcher.Dispatcher):
            namespace[name] = jit(namespace[name])
    compiled = {name: jit(namespace[name]) for name in kernels}
    flush_if_changed(compiled.values(), sources, tag)
    return SimpleNamespace(**compiled)


__all__ = ["compile_kernels", "flush_if_changed", "sources_digest"]
