"""Report the shipped denoiser: PSNR before/after on held-out images, Lipschitz bound, speed.

    python benchmarks/denoise_report.py [--weights PATH] [--n 32] [--json OUT.json]

Image sets (all 128 x 128 in [0, 1], Gaussian noise sigma = 5, 15, 25, 40 on the 8-bit scale):

* ``dead-leaves``: DL-Diverse and DL-Textured images from a seed never used in training
  (``ptyframe_lightning.deadleaves``, seed 777);
* ``smooth``: band-limited random fields (Gaussian-filtered white noise, random correlation
  length 2-12 px) rescaled to a random sub-range of [0, 1];
* ``particles``: weak-contrast particle fields like a phantom's amplitude -- 20-80 Gaussian
  blobs and hard disks (radius 2-10 px) on a slowly varying background.

The last two are generated here (no dependence on ``ptyframe.simulation``). Speed: one
``ComplexDenoiser`` call on a 512 x 512 complex64 object on the CPU with 1 and 2 torch
threads (median of 5 after a warm-up). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ptyframe.denoise.apply import ComplexDenoiser
from ptyframe.denoise.models import arch_record, certificate
from ptyframe.denoise.weights import load_denoiser, resolve_checkpoint

SIGMAS = (5, 15, 25, 40)


def smooth_fields(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``n`` band-limited random fields ``[n, size, size]`` in [0, 1]."""
    f = np.fft.fftfreq(size)
    f2 = f[:, None] ** 2 + f[None, :] ** 2
    out = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        ell = rng.uniform(2.0, 12.0)
        spec = np.fft.fft2(rng.standard_normal((size, size))) * np.exp(-2 * (np.pi * ell) ** 2 * f2)
        img = np.fft.ifft2(spec).real
        img = (img - img.min()) / (np.ptp(img) + 1e-12)
        lo = rng.uniform(0.0, 0.5)
        out[i] = lo + img * rng.uniform(0.3, 1.0 - lo)
    return out


def particle_fields(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``n`` particle images (blobs and disks on a smooth background) in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.empty((n, size, size), dtype=np.float32)
    for i in range(n):
        bg = smooth_fields(1, size, rng)[0] * 0.2 + rng.uniform(0.3, 0.6)
        img = bg.astype(np.float64)
        for _ in range(int(rng.integers(20, 80))):
            cy, cx = rng.uniform(0, size, 2)
            r = rng.uniform(2.0, 10.0)
            amp = rng.uniform(-0.25, 0.35)
            d2 = (yy - cy) ** 2 + (xx - cx) ** 2
            img += amp * (np.exp(-d2 / (2 * r * r)) if rng.random() < 0.5 else (d2 <= r * r))
        out[i] = np.clip(img, 0.0, 1.0)
    return out


def dead_leaves_set(n: int, size: int) -> np.ndarray:
    from ptyframe_lightning.deadleaves import make_images

    return make_images(n, ["diverse", "textured"], size, seed=777)


def psnr_table(model: torch.nn.Module, sets: dict[str, np.ndarray]) -> list[dict[str, float | str]]:
    rows: list[dict[str, float | str]] = []
    for name, clean in sets.items():
        for s in SIGMAS:
            rng = np.random.default_rng([2024, s])
            noisy = clean + s / 255.0 * rng.standard_normal(clean.shape).astype(np.float32)
            with torch.no_grad():
                den = model(torch.from_numpy(noisy)[:, None])[:, 0].double().numpy()
            p_in = float(np.mean(-10 * np.log10(np.mean((noisy - clean) ** 2, axis=(1, 2)))))
            p_out = float(np.mean(-10 * np.log10(np.mean((den - clean) ** 2, axis=(1, 2)))))
            rows.append(
                {"set": name, "sigma": s, "psnr_in": p_in, "psnr_out": p_out, "gain": p_out - p_in}
            )
    return rows


def jacobian_norm(f, x: torch.Tensor, n_iter: int = 40) -> float:
    """Return ||J_f(x)|| by power iteration on J^T J (torch.func jvp / vjp)."""
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    v = v / v.norm()
    sigma = 0.0
    _, vjp = torch.func.vjp(f, x)
    for _ in range(n_iter):
        _, jv = torch.func.jvp(f, (x,), (v,))
        (jtjv,) = vjp(jv)
        sigma = float(jv.norm())
        v = jtjv / jtjv.norm()
    return sigma


def local_lipschitz(model, clean: np.ndarray, sigma: float = 15.0) -> dict[str, float]:
    """Return the largest Jacobian norms of D (and of a DnCNN's N) over noisy ``clean`` images."""
    rng = np.random.default_rng(5)
    worst_n, worst_d = 0.0, 0.0
    body = getattr(model, "body", None)
    for img in clean:
        noisy = img + sigma / 255 * rng.standard_normal(img.shape).astype(np.float32)
        x = torch.from_numpy(noisy)[None, None]
        if body is not None:
            worst_n = max(worst_n, jacobian_norm(body, x))
        worst_d = max(worst_d, jacobian_norm(model, x))
    return {"N": worst_n, "D": worst_d} if body is not None else {"D": worst_d}


def time_complex(model: torch.nn.Module, threads: int, size: int = 512, reps: int = 5) -> float:
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        den = ComplexDenoiser(model, tile_px=512, overlap_px=32, device="cpu")
        g = torch.Generator().manual_seed(0)
        obj = torch.exp(1j * 0.3 * torch.randn(size, size, generator=g)).to(torch.complex64)
        den(obj)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            den(obj)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)
    finally:
        torch.set_num_threads(old)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None, help="weights file (default: the shipped one)")
    ap.add_argument("--n", type=int, default=32, help="images per set")
    ap.add_argument("--json", default=None, help="also write the numbers to this json file")
    args = ap.parse_args()

    model = load_denoiser(args.weights, "cpu")
    size = 128
    rng = np.random.default_rng(99)
    sets = {
        "dead-leaves (held out)": dead_leaves_set(args.n, size),
        "smooth fields": smooth_fields(args.n, size, rng),
        "particles": particle_fields(args.n, size, rng),
    }
    rows = psnr_table(model, sets)
    cert = certificate(model)
    norms = cert["layer_norm_bounds"]
    local = local_lipschitz(model, np.concatenate([v[:4] for v in sets.values()]))
    timing = {t: time_complex(model, t) for t in (1, 2)}

    path = str(resolve_checkpoint(args.weights))
    print(f"weights: {path}  arch: {arch_record(model)}\n")
    print("| image set | sigma (/255) | PSNR noisy (dB) | PSNR denoised (dB) | gain (dB) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['set']} | {r['sigma']} | {r['psnr_in']:.2f} | {r['psnr_out']:.2f} "
            f"| {r['gain']:+.2f} |"
        )
    print()
    if "network_lipschitz_bound" in cert:
        lip = cert["network_lipschitz_bound"]
        print(f"Lipschitz bound of the network N (product of exact layer norms): {lip:.6f}")
    print(f"bound on D ({cert['statement']}): {cert['denoiser_lipschitz_bound']:.6f}")
    print(f"per-layer norm bounds: {', '.join(f'{n:.5f}' for n in norms)}")
    print(
        "largest Jacobian norm at noisy held-out images (12 images, sigma 15): "
        + ", ".join(f"{k} {v:.4f}" for k, v in local.items())
    )
    print()
    print("| 512x512 complex64 object, CPU | seconds per call |")
    print("|---|---:|")
    for t, s in timing.items():
        print(f"| {t} torch thread{'s' if t > 1 else ''} | {s:.3f} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "weights": path,
                    "arch": arch_record(model),
                    "psnr": rows,
                    "certificate": cert,
                    "denoiser_lipschitz_bound": cert["denoiser_lipschitz_bound"],
                    "layer_norm_bounds": norms,
                    "jacobian_norm_max": local,
                    "seconds_512_complex": {str(k): v for k, v in timing.items()},
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
