"""Cost of PINE's denoising step with the default ``cpl_auto`` net, variant by variant.

The object is the ``natural`` case of ``benchmarks/quality_vs_time.py`` (121 patterns of
128 x 128, object ~292 x 292) after ``--warm`` ePIE sweeps. Every variant computes the same
map ``D(O) = D(Re O) + i D(Im O)`` of the frozen ``cpl_auto`` denoiser (``t`` frozen from the
scan's dose; at ``t = 0`` or 1 one net runs) and is checked against the reference (the plain
loop of ``cpl.py``'s docstring); the variants run interleaved, round by round, and the
table gives the median seconds and the ratio to the reference, so machine load hits all
alike. Also printed: one ePIE sweep on the same case (one thread), the profile of one
reference step and of one fast step, and how much ``D`` changes the object outside the
illuminated region.

    python benchmarks/denoise_cost.py [--reps 7] [--warm 5] [--t auto] [--profile]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptyframe.compose import build_engine
from ptyframe.data.dataset import PtychoDataset
from ptyframe.data.measurements import Measurements
from ptyframe.denoise.cpl import CplDenoiser
from ptyframe.denoise.cpl_fast import FoldedLayer, folded_forward, folded_layers
from ptyframe.engines.prior import DenoiseStep, DenoiseStepConfig
from ptyframe.plugins import default_registry
from ptyframe.registry import BuildContext

from _lib.cases import small_cases
from _lib.engines import prepared_engine

HERE = Path(__file__).resolve().parent


class Variant(nn.Module):
    """Wrap a ``CplDenoiser`` with another way to evaluate it (``how(net, x)``)."""

    def __init__(self, net: CplDenoiser, how: Callable[[CplDenoiser, Tensor], Tensor]) -> None:
        super().__init__()
        self.net, self.how = net, how
        self.receptive_radius = net.receptive_radius

    def forward(self, x: Tensor) -> Tensor:
        return self.how(self.net, x)


def ref_conv2d_adjoint(net: CplDenoiser, x: Tensor) -> Tensor:
    """Reference loop with the adjoint as ``conv2d`` with the flipped, transposed kernel."""
    pad, s = net.arch.kernel_size // 2, x
    gains = torch.exp(net.log_gain)
    for i, conv in enumerate(net.layers):
        g = gains[i].view(1, -1, 1, 1)
        h = torch.tanh(F.conv2d(s, conv.weight, conv.bias, padding=pad) * g) / g
        wt = conv.weight.transpose(0, 1).flip(-1, -2)
        s = s - net.step[i] * F.conv2d(h, wt, padding=pad)
    return s


def folded_conv(net: CplDenoiser, x: Tensor, transpose: bool) -> Tensor:
    """Folded cached constants, unfused ``tanh``, the adjoint as a (transposed) convolution."""
    pad, s = net.arch.kernel_size // 2, x
    for layer in folded_layers(net):
        h = torch.tanh_(F.conv2d(s, layer.w_in, layer.b_in, padding=pad))
        w = _adjoint_kernel(layer, net.arch.kernel_size)
        if transpose:
            s = s - F.conv_transpose2d(h, w, padding=pad)
        else:
            s = s - F.conv2d(h, w.transpose(0, 1).flip(-1, -2), padding=pad)
    return s


def _adjoint_kernel(layer: FoldedLayer, k: int) -> Tensor:
    hidden = layer.w_out.shape[1]
    return layer.w_out.t().reshape(hidden, -1, k, k)


def folded_gemm_unfused(net: CplDenoiser, x: Tensor) -> Tensor:
    """Folded constants, adjoint as GEMM + col2im, ``tanh`` as its own pass."""
    k = net.arch.kernel_size
    pad, s = k // 2, x.clone(memory_format=torch.contiguous_format)
    b, _, hh, ww = s.shape
    for layer in folded_layers(net):
        h = torch.tanh_(F.conv2d(s, layer.w_in, layer.b_in, padding=pad)).contiguous()
        cols = torch.matmul(layer.w_out, h.view(b, -1, hh * ww))
        s = s - F.fold(cols, (hh, ww), k, padding=pad)
    return s


def whole_image(net: CplDenoiser, x: Tensor) -> Tensor:
    """The fast path with every layer on the whole image at once (``strip_rows = 0``)."""
    return folded_forward(folded_layers(net), x, net.arch.kernel_size, 0)


def object_after(warm: int) -> tuple[object, Measurements, object]:
    """Return (dataset, measurements, state) of the natural case after ``warm`` ePIE sweeps."""
    work = Path(tempfile.mkdtemp(prefix="dncost-"))
    path = small_cases(warm)["natural"].simulate(work / "natural.h5")
    data = PtychoDataset.open(path)
    meas = Measurements.from_dataset(data)
    eng, state = prepared_engine(default_registry(), "epie", data, meas, epochs=warm)
    list(eng.iterate())
    return data, meas, state


def make_denoiser(reg: object, meas: Measurements, obj: Tensor, t: float | None) -> object:
    """Return the run's ``cpl_auto`` denoiser, frozen on ``obj`` (dose observed first)."""
    den = reg.build("denoiser", "cpl_auto", BuildContext(reg))
    if t is not None:
        den.t_fixed = float(t)
    DenoiseStep(DenoiseStepConfig(rho=0.49), den).observe(meas)
    den.freeze(obj)
    return den


def variant_denoiser(base: object, how: Callable | None, channels_last: bool = True) -> object:
    """Return a copy of the frozen ``base`` whose two nets are evaluated by ``how``."""
    from ptyframe.denoise.auto import AutoMixDenoiser, ConvexMix

    low, high = base.mix.low, base.mix.high
    if how is not None:
        low, high = Variant(low, how), Variant(high, how)
    den = AutoMixDenoiser(ConvexMix(low, high), base.sigma_low, base.sigma_high)
    den.load_state_dict(base.state_dict())
    den.channels_last = channels_last
    return den


def variants(base: object) -> dict[str, tuple[object, Callable]]:
    """Return name -> (denoiser, context factory) of every variant in the table."""
    import contextlib

    plain = contextlib.nullcontext
    ref = variant_denoiser(base, lambda n, x: n.reference_forward(x))
    fast = variant_denoiser(base, None)
    return {
        "reference loop (before)": (ref, plain),
        "reference, adjoint as flipped conv2d": (
            variant_denoiser(base, ref_conv2d_adjoint),
            plain,
        ),
        "folded+cached, conv_transpose2d": (
            variant_denoiser(base, lambda n, x: folded_conv(n, x, True)),
            plain,
        ),
        "folded+cached, flipped conv2d": (
            variant_denoiser(base, lambda n, x: folded_conv(n, x, False)),
            plain,
        ),
        "folded, GEMM+col2im adjoint, tanh apart": (
            variant_denoiser(base, folded_gemm_unfused),
            plain,
        ),
        "fast, whole image (no row strips)": (variant_denoiser(base, whole_image), plain),
        "fast (now the default)": (fast, plain),
        "fast, NCHW input (no channels_last)": (variant_denoiser(base, None, False), plain),
        "fast, mkldnn off": (fast, lambda: torch.backends.mkldnn.flags(enabled=False)),
        "fast, inference_mode": (fast, torch.inference_mode),
        "reference, 2 threads": (ref, lambda: threads(2)),
        "fast, 2 threads": (fast, lambda: threads(2)),
    }


class threads:  # a context manager
    """Run the block with ``n`` torch threads."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        self.was = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.was)


def support_report(den: object, state: object, data: PtychoDataset) -> None:
    """Print how much ``D`` changes the object outside the illuminated bounding box."""
    obj = state.object
    pos = state.positions_px.detach().cpu().numpy()
    m = state.probe.shape[-1]
    y0, x0 = np.floor(pos.min(0)).astype(int)
    y1, x1 = np.ceil(pos.max(0)).astype(int) + m
    r = int(den.model.receptive_radius)
    with torch.no_grad():
        change = (den(obj) - obj).abs()[0]
    inside = torch.zeros_like(change, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    ny, nx = obj.shape[-2:]
    box = (min(y1 + r, ny) - max(y0 - r, 0)) * (min(x1 + r, nx) - max(x0 - r, 0))
    print(
        f"\nobject {ny}x{nx}; illuminated box rows {y0}:{y1}, cols {x0}:{x1} "
        f"({(y1 - y0) * (x1 - x0) / (ny * nx):.0%} of the object; with the receptive radius "
        f"{r} px: {box / (ny * nx):.0%}); |D(O) - O| max inside {float(change[inside].max()):.3g}"
        + (
            f", outside {float(change[~inside].max()):.3g}"
            if bool((~inside).any())
            else ", nothing outside"
        )
    )


def profile(name: str, den: object, obj: Tensor) -> None:
    """Print the top operators of three denoising calls."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    with torch.no_grad(), prof(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(3):
            den(obj)
    print(f"\nprofile, {name} (3 calls, one thread):")
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=9))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warm", type=int, default=5)
    ap.add_argument("--t", type=float, nargs="*", default=[], help="also fixed t values")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data, meas, state = object_after(args.warm)
    reg = default_registry()
    base = make_denoiser(reg, meas, state.object, None)
    obj = state.object.detach().clone()
    table = variants(base)
    for t in args.t:
        b = make_denoiser(reg, meas, obj, t)
        r = variant_denoiser(b, lambda n, x: n.reference_forward(x))
        table[f"reference, t = {t:g}"] = (r, table["reference loop (before)"][1])
        table[f"fast, t = {t:g}"] = (variant_denoiser(b, None), table["fast (now the default)"][1])
    run_cfg = SimpleNamespace(engine={"name": "epie", "epochs": args.reps + 2})
    eng = build_engine(run_cfg, reg, BuildContext(reg))
    eng.prepare(meas, state.clone(), seed=0)
    sweeps = eng.iterate()
    next(sweeps)
    times: dict[str, list[float]] = {k: [] for k in table}
    times["ePIE sweep"] = []
    step = DenoiseStepConfig(rho=0.49)
    for _ in range(args.reps + 1):
        for name, (den, ctx) in table.items():
            work = obj.clone()
            with ctx():
                t0 = time.perf_counter()
                DenoiseStep(step, den).mix(work)
                times[name].append(time.perf_counter() - t0)
        times["ePIE sweep"].append(next(sweeps).seconds)
    with torch.no_grad():
        refs = {k: table[k][0](obj) for k in table if k.startswith("reference")}
    print(f"\ncpl_auto frozen t = {float(base.t.max()):g} (dose), object {tuple(obj.shape)}")
    print(f"median of {args.reps} interleaved rounds (first dropped), one thread unless named")
    print("\n| variant | s per step | ratio to reference | max rel. diff to reference |")
    print("|---|---|---|---|")
    ref_t = float(np.median(times["reference loop (before)"][1:]))
    for name, ts in times.items():
        med = float(np.median(ts[1:]))
        diff = "" if name == "ePIE sweep" else _diff(name, table, refs, obj)
        print(f"| {name} | {med:.4f} | {med / ref_t:.2f} | {diff} |")
    support_report(base, state, data)
    if args.profile:
        profile("reference loop", table["reference loop (before)"][0], obj)
        profile("fast", table["fast (now the default)"][0], obj)


def _diff(name: str, table: dict, refs: dict, obj: Tensor) -> str:
    den, ctx = table[name]
    key = next((k for k in refs if k.split(", t")[1:] == name.split(", t")[1:]), None)
    ref = refs[key or "reference loop (before)"]
    with torch.no_grad(), ctx():
        out = den(obj)
    return f"{float((out - ref).abs().max() / ref.abs().max()):.1e}"


if __name__ == "__main__":
    main()
