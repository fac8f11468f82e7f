"""PINE with different denoisers on the paper's experiments (conf/experiment), side by side.

Every case is a ``conf/experiment`` file composed exactly as ``ptyframe reconstruct
+experiment=<case>`` would (simulated particle film, Poisson noise, 300 sweeps). On each case
ePIE runs once (``rho = 0``, the reference) and PINE once per denoiser variant, all at one
(alpha, beta) per case (the paper's best PINE steps: lowdose (0.5, 0.1), highdose (0.8, 0.5),
overlap study (1.0, 0.1); ``--alpha/--beta`` override). A variant is
``label=checkpoint:normalisation`` with ``checkpoint`` a weights file, the stem of shipped
weights (``ptyframe.denoise.weights.shipped_weights``) or ``default``. Prints one markdown
table: FRC against the truth (``ptyframe.metrics``, band means at 1/2 and 3/4 Nyquist), NRMSE
and the data error after ``--early`` and ``--epochs`` sweeps, and seconds per run.

    python benchmarks/pine_denoisers.py --cases lowdose highdose \\
        --variants old=default:frozen blind=cpl_blind:frozen auto=@cpl_auto \\
        [--epochs 300 --early 150]

A variant ``label=@name[,key=value...]`` selects ``denoiser=name`` with those options (e.g.
``mix=@cpl_auto,t=0.5``); its frozen mix weight ``t`` and noise level are recorded.
"""

from __future__ import annotations

import argparse
import json
import time

from _lib.runs import compose, pick

STEPS = {"lowdose": (0.5, 0.1), "highdose": (0.8, 0.5)}
OVERLAP_STEPS = (1.0, 0.1)


def run_one(case: str, engine: str, alpha: float, beta: float, extra: list[str], epochs: int):
    """Run one reconstruction; return its metric history columns and wall seconds."""
    from ptyframe.runner import run

    overrides = [
        f"+experiment={case}",
        f"engine={engine}",
        f"engine.alpha={alpha}",
        f"engine.beta={beta}",
        f"engine.epochs={epochs}",
        "progress=false",
        *extra,
    ]
    cfg, registry = compose(overrides)
    t0 = time.perf_counter()
    res = run(cfg, registry, out_dir=None, write=False)
    return res.history.columns, time.perf_counter() - t0


def variant_overrides(spec: str) -> list[str]:
    """Return the overrides of a variant: ``checkpoint:normalisation`` (denoiser=dncnn) or
    ``@name[,key=value,...]`` (``denoiser=name`` and its options, e.g. ``@cpl_auto,t=0.5``)."""
    if spec.startswith("@"):
        name, *opts = spec[1:].split(",")
        return [f"denoiser={name}", *(f"denoiser.{o}" for o in opts)]
    ckpt, norm = spec.split(":")
    extra = ["denoiser=dncnn", f"denoiser.normalisation={norm}"]
    if ckpt != "default":
        extra.append(f"denoiser.checkpoint={ckpt}")
    return extra


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=["lowdose", "highdose"])
    ap.add_argument("--variants", nargs="+", default=["old=default:minmax"])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--early", type=int, default=150)
    ap.add_argument("--alpha", type=float, default=None)
    ap.add_argument("--beta", type=float, default=None)
    ap.add_argument("--no-epie", action="store_true", help="skip the ePIE reference runs")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    rows = []
    for case in args.cases:
        a, b = STEPS.get(case, OVERLAP_STEPS)
        a = args.alpha if args.alpha is not None else a
        b = args.beta if args.beta is not None else b
        jobs: list[tuple[str, str, list[str]]] = []
        if not args.no_epie:
            jobs.append(("ePIE", "epie", []))
        for v in args.variants:
            label, spec = v.split("=", 1)
            jobs.append((f"PINE {label}", "pine", variant_overrides(spec)))
        for label, engine, extra in jobs:
            cols, secs = run_one(case, engine, a, b, extra, args.epochs)
            row = {"case": case, "method": label, "alpha": a, "beta": b, "seconds": secs}
            for ep in (args.early, args.epochs):
                row[f"frc_half_{ep}"] = pick(cols, "frc_half_nyquist", ep)
                row[f"frc_3q_{ep}"] = pick(cols, "frc_3q_nyquist", ep)
                row[f"nrmse_{ep}"] = pick(cols, "nrmse", ep)
                row[f"data_error_{ep}"] = pick(cols, "data_error", ep)
            for key in ("denoise_t", "denoise_sigma", "denoise_dose"):  # cpl_auto's frozen t
                if cols.get(key):
                    row[key] = float(cols[key][-1])
            rows.append(row)
            print(
                f"  {case} {label}: FRC1/2 {row[f'frc_half_{args.early}']:.3f} "
                f"@{args.early}, {row[f'frc_half_{args.epochs}']:.3f} @{args.epochs}, "
                f"NRMSE {row[f'nrmse_{args.epochs}']:.4f} ({secs:.0f} s)",
                flush=True,
            )
    e, n = args.early, args.epochs
    print(
        f"\n| case | method | (alpha, beta) | FRC 1/2 Nyq @{e} | FRC 1/2 Nyq @{n} "
        f"| FRC 3/4 Nyq @{n} | NRMSE @{n} | data error @{n} | s |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['method']} | ({r['alpha']:g}, {r['beta']:g}) "
            f"| {r[f'frc_half_{e}']:.3f} | {r[f'frc_half_{n}']:.3f} | {r[f'frc_3q_{n}']:.3f} "
            f"| {r[f'nrmse_{n}']:.4f} | {r[f'data_error_{n}']:.4f} | {r['seconds']:.0f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
