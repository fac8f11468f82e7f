"""Error types that ptyframe raises for problems a user can fix.

Every error here carries one message that says what is wrong, where, and how to fix it. The
console script prints such errors as a single line (no traceback) and exits with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PtyframeError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""

    exit_code = 2


class ConfigError(PtyframeError, ValueError):
    """A configuration value is missing, misspelled or out of range."""


class UnknownComponentError(ConfigError, KeyError):
    """A component name is not registered; the message lists the registered names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateComponentError(PtyframeError):
    """Two providers registered the same (kind, name)."""


class PluginError(PtyframeError):
    """A plugin failed to import or to register its components."""


class DataValidationError(PtyframeError, ValueError):
    """An input file (data, initial guess, checkpoint, weights) is malformed."""


class InputLostError(DataValidationError):
    """The data stopped being readable while the run read it (a streamed file truncated or
    damaged): the run stops as an interrupted one does, its last good state saved."""


class OutputExistsError(PtyframeError, FileExistsError):
    """An output would overwrite an existing file or run."""


class DivergenceError(PtyframeError, FloatingPointError):
    """A reconstruction produced non-finite values or an exploding data error."""


def find_ptyframe_error(exc: BaseException | None) -> PtyframeError | None:
    """Return the first ``PtyframeError`` in ``exc``'s cause/context chain (libraries wrap ours)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, PtyframeError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
