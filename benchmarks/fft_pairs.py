"""Which FFT for the PIE sweep? 625 forward + inverse 128x128 complex64 pairs, one thread.

Candidates, timed in interleaved rounds (fastest and median of ``--rounds``): torch.fft with
``norm="ortho"`` and ``out=`` (the fused sweep before ``ptyframe.engines.pie_fft``), torch.fft
unscaled, scipy.fft (``workers=1``, ``overwrite_x``), numpy.fft, and FFTW through pyFFTW
(one thread) planned with ``FFTW_ESTIMATE`` (the sweep's default: the plan depends on the
shape alone, so two processes do the same arithmetic), ``FFTW_MEASURE`` and ``FFTW_PATIENT``
(planned by timing), each with no wisdom before it, with the time each took to plan; and the
sweep's own ``pie_fft.WindowFFT`` (``FFTW_ESTIMATE`` on buffers whose rows are padded past a
power-of-two stride). Prints a
markdown table and writes it as the results page ``docs/results/fft_pairs.md`` (``--no-page``:
print only).

    python benchmarks/fft_pairs.py [--rounds 9] [--size 128]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import scipy.fft
import torch

from _lib.results import Stamp, markdown_table, write_page

N_PAIRS = 625


def torch_pairs(m: int, norm: tuple[str, str]) -> Callable[[], None]:
    a = torch.randn(1, m, m, dtype=torch.complex64)
    b = torch.empty_like(a)

    def run() -> None:
        for _ in range(N_PAIRS):
            torch.fft.fft2(a, norm=norm[0], out=b)
            torch.fft.ifft2(b, norm=norm[1], out=a)

    return run


def scipy_pairs(m: int) -> Callable[[], None]:
    x = np.zeros((m, m), np.complex64)

    def run() -> None:
        y = x
        for _ in range(N_PAIRS):
            y = scipy.fft.fft2(y, overwrite_x=True, workers=1)
            y = scipy.fft.ifft2(y, overwrite_x=True, workers=1)

    return run


def numpy_pairs(m: int) -> Callable[[], None]:
    x = np.zeros((m, m), np.complex64)

    def run() -> None:
        for _ in range(N_PAIRS):
            np.fft.ifft2(np.fft.fft2(x))

    return run


def fftw_pairs(m: int, effort: str) -> tuple[Callable[[], None], float]:
    import pyfftw

    pyfftw.forget_wisdom()
    a = pyfftw.empty_aligned((1, m, m), dtype="complex64")
    b = pyfftw.empty_aligned((1, m, m), dtype="complex64")
    flags = (effort, "FFTW_DESTROY_INPUT")
    t0 = time.perf_counter()
    fw = pyfftw.FFTW(a, b, axes=(-2, -1), direction="FFTW_FORWARD", flags=flags, threads=1)
    bw = pyfftw.FFTW(
        b, a, axes=(-2, -1), direction="FFTW_BACKWARD", flags=flags, threads=1,
        normalise_idft=False,
    )  # fmt: skip
    plan_s = time.perf_counter() - t0
    a[...] = 0.0
    fwd, inv = fw.execute, bw.execute

    def run() -> None:
        for _ in range(N_PAIRS):
            fwd()
            inv()

    return run, plan_s


def sweep_pairs(m: int) -> tuple[Callable[[], None], float]:
    """The fused sweep's own transforms: ``pie_fft.WindowFFT`` (FFTW_ESTIMATE, rows padded)."""
    from ptyframe.engines import pie_fft

    t0 = time.perf_counter()
    w = pie_fft.WindowFFT((1, m, m), torch.complex64, False, "fftw", "FFTW_ESTIMATE")
    plan_s = time.perf_counter() - t0
    w.psi[...] = 0.0
    fwd, inv = w.forward, w.inverse

    def run() -> None:
        for _ in range(N_PAIRS):
            fwd()
            inv()

    return run, plan_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--no-page", action="store_true", help="print the table only")
    args = ap.parse_args()
    stamp = Stamp()
    torch.set_num_threads(1)
    m = args.size
    cands: dict[str, tuple[Callable[[], None], float | None]] = {
        "torch.fft, ortho, out=": (torch_pairs(m, ("ortho", "ortho")), None),
        "torch.fft, unscaled, out=": (torch_pairs(m, ("backward", "forward")), None),
        "scipy.fft, workers=1, overwrite_x": (scipy_pairs(m), None),
        "numpy.fft": (numpy_pairs(m), None),
    }
    try:
        for effort in ("FFTW_ESTIMATE", "FFTW_MEASURE", "FFTW_PATIENT"):
            cands[f"FFTW (pyFFTW), {effort}"] = fftw_pairs(m, effort)
        cands["FFTW_ESTIMATE, the sweep's buffers (rows padded)"] = sweep_pairs(m)
    except ImportError:
        print("pyFFTW not installed: no FFTW rows")
    load0 = os.getloadavg()[0]
    times: dict[str, list[float]] = {k: [] for k in cands}
    for _ in range(args.rounds):
        for name, (run, _) in cands.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    head = (
        f"{N_PAIRS} pairs of {m}x{m} complex64, one thread, {args.rounds} interleaved rounds; "
        f"load average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    ref = float(np.median(times["torch.fft, ortho, out="]))
    header = ["FFT", "fastest s", "median s", "median / torch.fft ortho", "plan s"]
    rows = []
    for name, (_, plan_s) in cands.items():
        t = times[name]
        plan = f"{plan_s:.2f}" if plan_s is not None else "-"
        med = float(np.median(t))
        rows.append([name, f"{min(t):.4f}", f"{med:.4f}", f"{med / ref:.2f}", plan])
    table = markdown_table(header, rows)
    print(head + "\n\n" + table)
    if not args.no_page:
        about = (
            "Which FFT for the PIE sweep: 625 forward + inverse pairs of complex64 transforms, "
            "one thread, the candidates timed in interleaved rounds (so their ratios share "
            "one load); FFTW's planning time beside. No peer: the reference is torch.fft with "
            '`norm="ortho"`. Compare the ratios, not the seconds, across machines.'
        )
        name = "fft_pairs" if m == 128 else f"fft_pairs_{m}"
        path = write_page(name, "Which FFT: one forward/inverse pair, each library",
                          head + "\n\n" + table, stamp, about=about)  # fmt: skip
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
