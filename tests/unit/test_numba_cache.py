"""The kernels' disk cache follows every source they compile from (``engines.numba_cache``).

numba keys a cached kernel on the file that defines it; a helper compiled into the kernel from
another file (the PIE rule in ``rules.py``) can change without the cache noticing. These tests
would catch the guard being removed or keyed on the wrong files: a kernel that keeps returning
the old rule's value after the rule's file changed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ptyframe.engines.numba_cache import sources_digest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="numba is not installed"
)

KERNEL = textwrap.dedent(
    """
    from pathlib import Path
    import numba
    import rule_mod
    from ptyframe.engines.numba_cache import flush_if_changed

    jit = numba.njit(cache=True)
    helper = jit(rule_mod.helper)

    def kernel(x):
        return helper(x) * 2.0

    k = jit(kernel)
    flush_if_changed([k], [Path(__file__), Path(rule_mod.__file__)], tag="test-kernels")
    print(k(1.0))
    """
)


def _run(folder: Path) -> float:
    out = subprocess.run(
        [sys.executable, "kern_mod.py"], cwd=folder, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def test_a_changed_helper_reaches_the_cached_kernel(tmp_path: Path) -> None:
    """The kernel is cached with the helper ``x + 1`` inside; after the helper's file alone
    changes to ``x + 2`` the next process must compute with the new helper (6, not 4)."""
    (tmp_path / "rule_mod.py").write_text("def helper(x):\n    return x + 1.0\n")
    (tmp_path / "kern_mod.py").write_text(KERNEL)
    assert _run(tmp_path) == 4.0
    assert _run(tmp_path) == 4.0  # from the cache: the stamp matches
    (tmp_path / "rule_mod.py").write_text("def helper(x):\n    return x + 2.0\n")
    assert _run(tmp_path) == 6.0


def test_the_digest_covers_every_source(tmp_path: Path) -> None:
    """A change in any one file changes the digest (the stamp would otherwise match)."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 1\n")
    before = sources_digest([a, b])
    b.write_text("y = 2\n")
    assert sources_digest([a, b]) != before
    assert sources_digest([a, b]) == sources_digest([a, b])


def test_the_pie_kernels_are_guarded_by_the_rule() -> None:
    """The PIE kernels' stamp names ``rules.py`` among its sources: the file whose change went
    unnoticed before."""
    from ptyframe.engines import kernels, rules

    compiled = kernels.kernels()
    stamp = Path(compiled.update._cache.cache_path) / "ptyframe-pie-kernels.sources.sha256"
    expected = sources_digest([Path(kernels.__file__), Path(rules.__file__)])
    assert stamp.read_text().strip() == expected
