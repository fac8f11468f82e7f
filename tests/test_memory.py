"""Know before you run: the memory estimate, the available memory, the plan (#26)."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from ptyframe import cli
from ptyframe.data import feed, memory
from ptyframe.data.memory import InsufficientMemoryError, RunShape, estimate, plan
from ptyframe.errors import ConfigError

from plain_h5 import write_plain

GB = 10**9


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("mem") / "d.h5"
    write_plain(path, m=64, n=8, step=12.0)
    return path


def test_available_memory_can_be_set_and_is_parsed(monkeypatch):
    """``PTYFRAME_MEMORY_AVAILABLE`` overrides ``/proc/meminfo`` (what the tests rely on), in
    the units people write; a typo is a ``ConfigError``."""
    assert memory.parse_bytes("8GiB") == 8 * 2**30
    assert memory.parse_bytes("500 MB") == 500 * 10**6
    assert memory.parse_bytes("2e9") == 2 * 10**9
    with pytest.raises(ConfigError, match="PTYFRAME_MEMORY_AVAILABLE"):
        memory.parse_bytes("lots")
    monkeypatch.setenv(memory.ENV, "3GB")
    assert memory.available_bytes() == 3 * GB
    monkeypatch.delenv(memory.ENV)
    assert memory.available_bytes() > 0


def test_estimate_counts_what_the_run_holds():
    """The patterns part is exactly the amplitudes (and a shared mask) a run holds as float
    amplitudes, or the counts (and the feed's ring) it holds as counts; the object and probe
    their complex arrays; streamed, two blocks of stored counts and the ring.

    Would catch: an estimate in the wrong units, one that forgot the real dtype or the
    modes, or a streamed estimate that still counts every pattern.
    """
    s = RunShape("epie", n=1000, window=(128, 128), object_px=1024 * 1024, modes=2)
    e = estimate(s, base=0)
    assert e.parts["patterns"] == 1000 * 128 * 128 * 4 + 128 * 128
    assert e.parts["object"] == 1024 * 1024 * 8 and e.parts["probe"] == 2 * 128 * 128 * 8
    assert e.parts["process"] == 0 and e.adds == e.total
    e64 = estimate(RunShape("epie", 1000, (128, 128), 1024 * 1024, complex_bytes=16), base=0)
    assert e64.parts["patterns"] == 1000 * 128 * 128 * 8 + 128 * 128
    st = estimate(
        RunShape("epie", 1000, (128, 128), 1024**2, stored_bytes=2), stream=True, block=50
    )
    ring = feed.RING * feed.CHUNK_BYTES * 5 // 4  # float32 rows and their masks
    assert st.parts["patterns"] == 2 * 50 * 128 * 128 * 2 + 128 * 128 + ring
    counts = estimate(
        RunShape("epie", 1000, (128, 128), 1024**2, stored_bytes=2, holds_counts=True), base=0
    )
    assert counts.parts["patterns"] == 1000 * 128 * 128 * 2 + 128 * 128 + ring
    raar = estimate(RunShape("raar", 1000, (128, 128), 1024**2), base=0)
    assert raar.parts["engine"] == 3 * 1000 * 128 * 128 * 8  # every exit wave, twice more
    assert "memory: this run needs about" in e.line()


def test_plan_keeps_streams_or_refuses_with_the_fixes():
    """In memory when it fits; ``auto`` streams a run that does not fit when the engine can;
    otherwise one error line with what it needs, what there is and fixes that work
    (``data.max_tiles`` small enough to fit, ``data.bin=2``).

    Would catch: a run let through that the kernel would kill, a refusal of a run that fits,
    a suggested ``max_tiles`` that still does not fit, or ``data.stream=true`` accepted by
    an engine that reads its patterns from memory.
    """
    s = RunShape("epie", n=20000, window=(128, 128), object_px=2048**2)
    need = estimate(s, base=0).total
    ok = plan(s, "auto", 2 * need)
    assert not ok.stream and "memory: this run needs" in ok.message
    streamed = plan(s, "auto", need // 2, can_stream=True)
    assert streamed.stream and "data.stream=auto" in streamed.message
    with pytest.raises(InsufficientMemoryError) as err:
        plan(s, "auto", need // 2)
    msg = str(err.value)
    assert "\n" not in msg and "nothing was run" in msg and "data.bin=2" in msg
    n_fit = int(msg.split("data.max_tiles=")[1].split()[0])
    assert 0 < n_fit < s.n
    assert not plan(RunShape(**{**s.__dict__, "n": n_fit}), "false", need // 2).stream
    with pytest.raises(ConfigError, match="data.stream=true: engine 'epie' holds every"):
        plan(s, "true", 2 * need)
    assert plan(s, "true", 2 * need, can_stream=True).stream
    with pytest.raises(InsufficientMemoryError, match="data.stream=true"):
        plan(s, "false", need // 2, can_stream=True)


def test_a_run_that_cannot_fit_stops_before_any_work(data, tmp_path, capsys, monkeypatch):
    """``ptyframe reconstruct`` with too little memory available: exit 2, one error line
    naming the fixes, no directory or file left behind.

    Would catch: a refusal that prints a traceback, exits 1, or after Hydra made the run's
    directory (the invariant: nothing written), or a check run after the patterns were read.
    """
    os.chdir(tmp_path)
    monkeypatch.setenv(memory.ENV, "1MB")
    rc = cli.main(["reconstruct", f"data.path={data}", "engine.epochs=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("ptyframe: error: this run needs about"), err
    assert "data.bin=2" in err[0] and "1 MB is available" in err[0]
    assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())
    rc = cli.main(["reconstruct", f"data.path={data}", "engine.epochs=1", "data.stream=maybe"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "use true, false or auto" in err[0]
    assert not any(tmp_path.iterdir())


def test_the_estimate_is_logged_and_recorded(data, caplog):
    """A run logs its estimate at start and records it in ``recon.h5``'s attributes.

    Would catch: an estimate that is never shown (the user learns nothing before the run).
    """
    from ptyframe.runner import reconstruct

    with caplog.at_level(logging.INFO, logger="ptyframe"):
        res = reconstruct(str(data), "epie", epochs=1)
    lines = [r.getMessage() for r in caplog.records if "memory: this run needs" in r.getMessage()]
    assert len(lines) == 1 and "available" in lines[0]
    assert res.attrs["memory_estimate_bytes"] > 8 * 64 * 64 * 4
    assert res.attrs["patterns_streamed"] is False
    assert np.isfinite(res.metrics["data_error"])
