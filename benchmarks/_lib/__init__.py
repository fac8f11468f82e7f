"""Helpers shared by the benchmark scripts (import as ``from _lib.results import ...``).

The scripts under ``benchmarks/`` run as ``python benchmarks/NAME.py``; their folder is then
first on ``sys.path``, so this package imports as ``_lib``. It imports only ``ptyframe`` and
the standard library, never another benchmark script.
"""
