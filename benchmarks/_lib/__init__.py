"""Helpers shared by the benchmark scripts (import as ``from _lib.results import ...``).

The scripts under ``benchmarks/`` run as ``python benchmarks/NAME.py``; their folder is then
first on ``sys.path``, so this package imports as ``_lib``. A script in a sub-folder
(``peers/``, ``readers/``) puts ``benchmarks/`` first with one line before importing it::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _lib

A script imports only ``ptyframe``, this package and third-party packages, never another
script. The modules:

* ``results``: the results page of a benchmark (stamp, table, ``docs/results/NAME.md``);
* ``cases``: the simulated cases (the peer table's files, the in-memory timing cases);
* ``engines``: a registered engine built, prepared, run and scored on a case;
* ``score``: a tool's result scored against the truth, failures detected;
* ``exchange_io``: the data-exchange layout read and a peer's result written with numpy and
  h5py only (the peer runners run in venvs without ptyframe);
* ``runs``: a run composed as ``ptyframe reconstruct <overrides>`` composes it;
* ``reader_case``: the readers' case, simulated once and written in several layouts.
"""
