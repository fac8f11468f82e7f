"""Check a configuration value against its range: one ``ConfigError`` line naming the field."""

from __future__ import annotations

from ptyframe.errors import ConfigError


def check_range(
    owner: str,
    name: str,
    value: float,
    lo: float,
    hi: float,
    lo_open: bool = True,
    hi_open: bool = False,
) -> None:
    """Raise ``ConfigError`` unless ``value`` lies in the interval (lo, hi] (bounds as asked)."""
    ok_lo = value > lo if lo_open else value >= lo
    ok_hi = value < hi if hi_open else value <= hi
    if not (ok_lo and ok_hi) or value != value:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ConfigError(
            f"{owner}.{name} = {value} is out of range; it must lie in {left}{lo}, {hi}{right}"
        )
