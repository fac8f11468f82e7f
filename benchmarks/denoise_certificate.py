"""Certify a denoiser as PINE applies it: the bound from the weights and the measured constant.

    python benchmarks/denoise_certificate.py [--weights PATH_OR_STEM] [--write]
    python benchmarks/denoise_certificate.py --auto 0 0.5 1     (denoiser=cpl_auto, frozen t)

Bound: ``ptyframe.denoise.models.certificate`` (rigorous per-layer operator norms; for the
``cpl`` family ``Lip(D) <= prod_k max(1, t_k S_k^2 - 1)``, for a DnCNN ``1 + Lip(N)`` or
``(1 + Lip(N))/2``). Measured: the largest Jacobian norm (power iteration,
``ptyframe.denoise.check``) of the *whole* applied map ``O -> D(Re O) + i D(Im O)`` with the
normalisation, complex object in and out, at PINE-like objects: the particle film of
``conf/experiment/lowdose`` (141 x 141 px, ``exp(-i phi)`` with absorption) plus complex
Gaussian noise of 0.02 and 0.05 per part, and a uniformly random complex object; for the
``frozen`` normalisation frozen on the object itself (the worst case for the scale) and for
``minmax``. ``--write`` stores the numbers in the weights' json sidecar (``certificate``),
which ``ptyframe plugins`` shows.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from ptyframe.denoise.apply import ComplexDenoiser
from ptyframe.denoise.check import applied_jacobian_norm
from ptyframe.denoise.models import arch_record, certificate
from ptyframe.denoise.weights import load_denoiser, resolve_checkpoint
from ptyframe.simulation.phantoms import ParticlesConfig, ParticlesPhantom


def objects(n_px: int = 141) -> dict[str, torch.Tensor]:
    """Return the test objects (complex64 ``[n, n]``) by name."""
    rng = np.random.default_rng(0)
    phi = ParticlesPhantom(ParticlesConfig()).phase_depth((n_px, n_px), rng)
    film = np.exp(-0.12 * phi) * np.exp(-1j * phi)
    out = {}
    for s in (0.02, 0.05):
        noise = s * (rng.standard_normal(film.shape) + 1j * rng.standard_normal(film.shape))
        out[f"particle film + noise {s:g}"] = torch.tensor(film + noise, dtype=torch.complex64)
    rnd = rng.uniform(-1, 1, film.shape) + 1j * rng.uniform(-1, 1, film.shape)
    out["uniform random"] = torch.tensor(rnd, dtype=torch.complex64)
    return out


def measure(model: torch.nn.Module, n_iter: int = 30) -> dict[str, dict[str, float]]:
    """Return ``{normalisation: {object: ||J||}}`` of the whole applied map."""
    torch.manual_seed(0)
    out: dict[str, dict[str, float]] = {}
    for norm in ("frozen", "minmax"):
        out[norm] = {}
        for name, obj in objects().items():
            den = ComplexDenoiser(model, normalisation=norm)
            out[norm][name] = round(applied_jacobian_norm(den, obj, n_iter), 5)
    return out


def measure_auto(ts: list[float], n_iter: int = 30) -> dict[str, dict[str, float]]:
    """Return ``{t: {object: ||J||}}`` of ``denoiser=cpl_auto`` with ``t`` frozen (frozen range)."""
    from ptyframe.denoise.plugin import CplAutoConfig, build_cpl_auto
    from ptyframe.registry import BuildContext

    torch.manual_seed(0)
    out: dict[str, dict[str, float]] = {}
    for t in ts:
        out[f"t={t:g}"] = {}
        for name, obj in objects().items():
            den = build_cpl_auto(CplAutoConfig(t=t), BuildContext(registry=None))  # type: ignore[arg-type]
            den(obj)  # freezes the range and t on the object itself
            out[f"t={t:g}"][name] = round(applied_jacobian_norm(den, obj, n_iter), 5)
    return out


def main_auto(ts: list[float], n_iter: int) -> int:
    """Print the bound and the measured constants of ``cpl_auto`` at the frozen ``ts``."""
    from ptyframe.denoise.plugin import auto_certificate_line

    print(f"cpl_auto: {auto_certificate_line()}")
    print("\n| frozen t | object | measured ||J|| of the applied map |")
    print("|---|---|---:|")
    for t, rows in measure_auto(ts, n_iter).items():
        for name, val in rows.items():
            print(f"| {t} | {name} | {val:.4f} |")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None, help="weights file or shipped stem (default)")
    ap.add_argument("--n-iter", type=int, default=30)
    ap.add_argument("--write", action="store_true", help="store the numbers in the json")
    ap.add_argument(
        "--auto", nargs="+", type=float, default=None, help="measure cpl_auto at these frozen t"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.auto:
        return main_auto(args.auto, args.n_iter)
    model = load_denoiser(args.weights, "cpu")
    cert = certificate(model)
    measured = measure(model, args.n_iter)
    path = resolve_checkpoint(args.weights)
    print(f"weights: {path}\narch: {arch_record(model)}")
    print(f"bound: {cert['statement']}: Lip(D) <= {cert['denoiser_lipschitz_bound']:.6f}")
    print("\n| normalisation | object | measured ||J|| of the applied map |")
    print("|---|---|---:|")
    for norm, rows in measured.items():
        for name, val in rows.items():
            print(f"| {norm} | {name} | {val:.4f} |")
    if args.write:
        side = path.with_suffix(".json")
        blob = json.loads(side.read_text()) if side.exists() else {}
        blob["certificate"] = {
            **{k: v for k, v in cert.items()},
            "applied_map_jacobian_norm": measured,
            "command": "python benchmarks/denoise_certificate.py --write"
            + (f" --weights {args.weights}" if args.weights else ""),
        }
        side.write_text(json.dumps(blob, indent=2) + "\n")
        print(f"\nwrote the certificate into {side}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
