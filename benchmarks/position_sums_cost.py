"""What the position sums cost inside a fused PIE position, beside the passes they join.

    flock "$PTYFRAME_BENCH_LOCK" .venv/bin/python benchmarks/position_sums_cost.py \
        [--window 128] [--modes 1] [--repeats 300]

One PIE position of the fused numba sweep (``ptyframe.engines.pie_kernels`` and the planned
transforms of ``pie_fft``) is, for ``K`` probe modes of ``M x M``: ``exit_wave``, the forward
transform, ``modulus_delta``, the inverse transform, ``update``. The position correction adds
one pass, ``position_kernels.position_sums`` (after the inverse transform, before the update).
This script times each of them on the same arrays (complex64, one thread), interleaved: in
each round every kernel runs ``--batch`` times in a row on the same fresh arrays and the
round's mean per call is kept;
the table gives the median over ``--repeats`` rounds, and the sums' cost as a ratio to the
update pass and to the whole position. Arrays are random (the cost does not depend on the
values); the load average is in the stamp.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _lib.results import Stamp, markdown_table, write_page  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--window", type=int, default=128)
    p.add_argument("--modes", type=int, default=1)
    p.add_argument("--repeats", type=int, default=300)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--no-page", action="store_true")
    args = p.parse_args(argv)
    stamp = Stamp()
    import torch

    torch.set_num_threads(1)
    from ptyframe.engines import pie_fft, pie_kernels
    from ptyframe.engines.corrections import position_kernels

    m, k = args.window, args.modes
    rng = np.random.default_rng(0)

    def cplx(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)

    obj = cplx(4 * m, 4 * m)
    probe_t = torch.from_numpy(cplx(k, m, m))
    fft = pie_fft.WindowFFT((k, m, m), torch.complex64, False)
    kern, pos = pie_kernels.kernels(), position_kernels.kernels()
    one = k == 1
    p = probe_t.numpy()[0] if one else probe_t.numpy()
    p_out = np.empty_like(p)
    psi = fft.psi[0] if one else fft.psi
    wave = fft.wave[0] if one else fft.wave
    amp = np.abs(rng.standard_normal((m, m))).astype(np.float32)
    maxima = np.ones(2, dtype=np.float32)
    rule = pie_kernels.step_rule(np.complex64, False, 0.25, 0.25, True, 1.0, 1.0, True)
    inv_s, inv_n = pie_kernels.real_scalars(np.complex64, 1.0 / m, 1.0 / (m * m))
    half = position_kernels.half_of(np.complex64)
    sums = np.zeros(5)
    bits = np.uint32
    o_abs2 = np.empty((m, m), np.float32)
    p_abs2 = np.empty((m, m), np.float32)
    y0 = x0 = m
    valid = pie_kernels.no_mask((m, m))

    def exit_pass() -> None:
        if one:
            kern.exit_wave1(obj, y0, x0, p, psi, o_abs2, p_abs2, o_abs2.view(bits),
                            p_abs2.view(bits), maxima.view(bits))  # fmt: skip
        else:
            kern.exit_wave(obj, y0, x0, p, psi, maxima)

    def modulus_pass() -> None:
        if one:
            kern.modulus_delta1(wave, amp, inv_s, inv_n)
        else:
            kern.modulus_delta(wave, amp, valid, False, inv_s, inv_n)

    def update_pass() -> None:
        (kern.update1 if one else kern.update)(obj, y0, x0, p, psi, p_out, maxima, rule)

    def sums_pass() -> None:
        (pos.position_sums1 if one else pos.position_sums)(obj, y0, x0, p, psi, sums, half)

    passes = {
        "exit_wave": exit_pass,
        "forward FFT": fft.forward,
        "modulus_delta": modulus_pass,
        "inverse FFT": fft.inverse,
        "update": update_pass,
        "position_sums": sums_pass,
    }
    fresh_psi, fresh_wave, fresh_obj = psi.copy(), cplx(*wave.shape), obj.copy()

    def refresh() -> None:  # the same values every round (outside the timing)
        psi[...] = fresh_psi
        wave[...] = fresh_wave
        obj[...] = fresh_obj

    for f in passes.values():  # compile and warm
        refresh()
        f()
    times: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(args.repeats):
        for name, f in passes.items():
            refresh()
            t0 = time.perf_counter()
            for _ in range(args.batch):
                f()
            times[name].append((time.perf_counter() - t0) / args.batch)
    med = {name: float(np.median(v)) * 1e6 for name, v in times.items()}
    position = sum(v for n, v in med.items() if n != "position_sums")
    rows = [[n, f"{v:.1f}"] for n, v in med.items()]
    rows.append(["one PIE position (all but position_sums)", f"{position:.1f}"])
    ratio_update = med["position_sums"] / med["update"]
    ratio_position = med["position_sums"] / position
    table = markdown_table(["pass", "median us per call"], rows)
    ratios = markdown_table(
        ["position_sums / update pass", "position_sums / one PIE position"],
        [[f"{ratio_update:.2f}", f"{ratio_position:.2f}"]],
    )
    print(f"window {m}, modes {k}, complex64, one thread\n{table}\n{ratios}")
    if not args.no_page:
        about = (
            f"The position-correction sums (`ptyframe.engines.corrections.position_kernels`) "
            f"against the passes of one fused PIE position, {m} x {m} window, {k} probe "
            "mode(s), complex64, one thread, interleaved (module docstring of "
            "`benchmarks/position_sums_cost.py`)."
        )
        write_page("position_sums_cost", "Cost of the position sums", table + "\n" + ratios,
                   stamp, about)  # fmt: skip


if __name__ == "__main__":
    main()
