"""Run pty-chi 2.2.0 on a data-exchange file; executed in ``.venv-ptychi`` (no ptyframe there).

    .venv-ptychi/bin/python benchmarks/peers/run_ptychi.py DATA.h5 OUT.npz \
        --engine EPIE --sweeps 100 --threads 1 [--truth-probe] [--seed 0]
        [--position-correction] [--opr K] [--flux] [--truth-positions]
    .venv-ptychi/bin/python benchmarks/peers/run_ptychi.py --self-test   # imports only

torchvision: pty-chi pulls it, but the PyPI wheel does not import beside the CPU torch
(``operator torchvision::nms does not exist``); the installer removes it and
``install_torchvision_stand_in`` registers a module providing the one name pty-chi imports,
``torchvision.transforms.GaussianBlur`` (used only by a random-image helper of
``ptychi.utils``, never by a reconstruction). Calling it raises.

Mapping (checked by the truth-probe run of ``compare.py``, which must align at zero shift):

* Far field: pty-chi models ``|fft2(psi)|^2`` with the zero frequency at the corner and
  torch's unnormalised FFT; the file's patterns are centred ptyframe intensities
  ``|fft2(psi, norm="ortho")|^2``, so they go in with ``data_options.fft_shift=True`` and a
  probe of ptyframe's scale enters as ``P / M`` (and leaves as ``M P``).
* Positions: pty-chi's positions are patch centres relative to ``position_origin_coords``;
  its forward model extracts the patch at ``round(position) + origin`` and Fourier-shifts the
  probe by ``position - round(position)``. We pass the file's top-left corners as positions
  and ``origin = pad + (M - 1) / 2`` (``SPECIFIED``), which keeps the half-pixel parity of the
  even window in the origin (passing centres ``t + (M - 1) / 2`` instead gives +-0.5 px
  shifts that alternate with the parity of ``t``: torch rounds half to even). The object
  buffer is ptyframe's frame padded by ``pad`` on every side; we crop ``[pad:pad + N]``.
* Start: object ones; pty-chi ships no probe initialiser, so the probe starts as a flat disc
  of diameter ``M / 3`` (PtyLab's "circ" size) scaled by ``ptychi.utils.rescale_probe`` to
  the mean pattern's power, or, with ``--truth-probe``, as ``/truth/probe / M`` with the probe
  not optimised.
* Real-experiment corrections (its own options, defaults otherwise): ``--position-correction``
  sets ``probe_position_options.optimizable`` (its gradient correction, update limits and
  start at their defaults; not ``constrain_position_mean``, which moves the positions' mean
  to 0 and with it the object out of the buffer of this mapping); the refined positions come
  back from ``get_data_to_cpu("probe_positions")`` in the convention they went in (top-left
  corners), written as ``positions_px``. ``--opr K`` adds ``K - 1`` OPR modes with its own
  helpers (``add_additional_opr_probe_modes_to_probe``, ``generate_initial_opr_mode_weights``;
  ``torch.manual_seed(--seed)`` for their random start) and optimises the eigenmode weights;
  ``--flux`` optimises the weight of the first OPR mode (its "intensity variation"); the
  weights are written as ``probe_weights``. ``--truth-positions`` starts from
  ``/truth/positions_px`` (the mapping check of a corrected run).
* Engines: ``EPIE``, ``LSQML``, ``Autodiff`` (``AutodiffPtychographyOptions``), with
  pty-chi's own defaults for every option this mapping does not need (batch size 100, ...);
  CPU, float32, ``random_seed = --seed``. Each sweep is one ``task.run(1)`` call, timed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for _lib
from _lib.exchange_io import read_case, set_threads, write_result

ENGINES = {
    "EPIE": "EPIEOptions",
    "LSQML": "LSQMLOptions",
    "Autodiff": "AutodiffPtychographyOptions",
}
PAD_PX = 16


def install_torchvision_stand_in() -> None:
    """Register ``torchvision.transforms.GaussianBlur`` (raises if called) unless importable."""
    try:
        importlib.import_module("torchvision.transforms")
        return
    except Exception:  # absent, or the CUDA wheel failing beside CPU torch
        for key in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            del sys.modules[key]

    class GaussianBlur:  # stand-in
        def __init__(self, *args, **kwargs) -> None:
            raise RuntimeError(
                "torchvision is not installed beside the CPU torch; this stand-in only lets "
                "`import ptychi` succeed (GaussianBlur is used by a random-image helper)"
            )

    pkg = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    transforms.GaussianBlur = GaussianBlur
    pkg.transforms = transforms
    pkg.__path__ = []  # a package, so `import torchvision.transforms` resolves
    sys.modules["torchvision"] = pkg
    sys.modules["torchvision.transforms"] = transforms


def disc_probe(m: int):
    """Return a flat disc ``[M, M]`` of diameter ``M / 3`` centred at ``M // 2``."""
    import numpy as np

    yy, xx = np.meshgrid(np.arange(m) - m // 2, np.arange(m) - m // 2, indexing="ij")
    return (np.hypot(yy, xx) <= m / 6.0).astype(np.complex64)


def build_options(args: argparse.Namespace, case):
    """Return the pty-chi options for ``args.engine`` on ``case`` (module docstring)."""
    import numpy as np
    import ptychi.api as api
    import torch
    from ptychi.utils import rescale_probe

    m = case.window_px
    ny, nx = case.object_shape
    opts = getattr(api, ENGINES[args.engine])()
    opts.data_options.data = torch.from_numpy(case.patterns)
    opts.data_options.fft_shift = True
    opts.data_options.wavelength_m = case.wavelength_m
    if args.truth_probe:
        probe = case.truth_probe.astype(np.complex64) / m
        opts.probe_options.optimizable = False
    else:
        probe = rescale_probe(disc_probe(m)[None, None], case.patterns)
    opts.probe_options.initial_guess = torch.from_numpy(np.asarray(probe)).reshape(1, 1, m, m)
    opts.object_options.initial_guess = torch.ones(
        1, ny + 2 * PAD_PX, nx + 2 * PAD_PX, dtype=torch.complex64
    )
    opts.object_options.pixel_size_m = case.pixel_size_m
    opts.object_options.determine_position_origin_coords_by = (
        api.enums.ObjectPosOriginCoordsMethods.SPECIFIED
    )
    origin = PAD_PX + (m - 1) / 2.0
    opts.object_options.position_origin_coords = np.array([origin, origin])
    opts.probe_position_options.position_y_px = torch.from_numpy(case.positions_px[:, 0].copy())
    opts.probe_position_options.position_x_px = torch.from_numpy(case.positions_px[:, 1].copy())
    opts.probe_position_options.optimizable = False
    rec = opts.reconstructor_options
    rec.num_epochs = int(args.sweeps)
    rec.default_device = api.enums.Devices.CPU
    rec.random_seed = int(args.seed)
    add_corrections(args, opts, case)  # last: the lines above reset position optimisation
    return opts


def add_corrections(args: argparse.Namespace, opts, case) -> None:
    """Switch on pty-chi's position correction, OPR and intensity variation as asked."""
    import torch
    from ptychi.utils import (
        add_additional_opr_probe_modes_to_probe,
        generate_initial_opr_mode_weights,
    )

    if args.position_correction:
        opts.probe_position_options.optimizable = True
    k = max(int(args.opr), 1)
    if k > 1 or args.flux:
        torch.manual_seed(int(args.seed))
        probe = opts.probe_options.initial_guess
        if k > 1:
            probe = add_additional_opr_probe_modes_to_probe(probe, k - 1)
        opts.probe_options.initial_guess = probe
        n = case.positions_px.shape[0]
        weights = generate_initial_opr_mode_weights(n, k, probe=probe if k > 1 else None)
        w = opts.opr_mode_weight_options
        w.initial_weights = weights
        w.optimizable = True
        # pydantic checks each assignment: at least one of the two must be on at every step,
        # so the intensity variation goes first (with --flux and no OPR modes, k = 1)
        w.optimize_intensity_variation = bool(args.flux)
        w.optimize_eigenmode_weights = k > 1


def run(args: argparse.Namespace) -> None:
    """Load, map, reconstruct sweep by sweep and write the result."""
    import numpy as np
    import torch

    torch.set_num_threads(int(args.threads))
    install_torchvision_stand_in()
    from ptychi.api.task import PtychographyTask

    case = read_case(args.data)
    if args.truth_probe and case.truth_probe is None:
        raise SystemExit(f"{args.data} has no /truth/probe")
    if args.truth_positions:
        if case.truth_positions is None:
            raise SystemExit(f"{args.data} has no /truth/positions_px")
        case.positions_px = case.truth_positions
    opts = build_options(args, case)
    seconds = []
    with PtychographyTask(opts) as task:
        for _ in range(int(args.sweeps)):
            t0 = time.perf_counter()
            task.run(1)
            seconds.append(time.perf_counter() - t0)
            if len(seconds) % 10 == 0 or len(seconds) == int(args.sweeps):
                print(f"sweep {len(seconds)}/{args.sweeps}: {seconds[-1]:.2f} s", flush=True)
        obj = task.get_data_to_cpu("object", as_numpy=True)
        probe = task.get_data_to_cpu("probe", as_numpy=True)
        extra = {}
        if args.position_correction:
            extra["positions_px"] = task.get_data_to_cpu("probe_positions", as_numpy=True)
        if int(args.opr) > 1 or args.flux:
            extra["probe_weights"] = task.get_data_to_cpu("opr_mode_weights", as_numpy=True)
    ny, nx = case.object_shape
    m = case.window_px
    obj = np.asarray(obj).reshape(obj.shape[-2:])[PAD_PX : PAD_PX + ny, PAD_PX : PAD_PX + nx]
    probe = np.asarray(probe).reshape(-1, m, m)[0] * m  # the first (OPR) mode
    import ptychi

    info = {
        "tool": "pty-chi",
        "version": getattr(ptychi, "__version__", "2.2.0"),
        "engine": args.engine,
        "sweeps": int(args.sweeps),
        "threads": int(args.threads),
        "truth_probe": bool(args.truth_probe),
        "pad_px": PAD_PX,
        "batch_size": int(opts.reconstructor_options.batch_size),
        "position_correction": bool(args.position_correction),
        "opr_modes": int(args.opr),
        "flux": bool(args.flux),
    }
    write_result(args.out, obj, probe, seconds, info, **extra)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="?")
    p.add_argument("out", nargs="?")
    p.add_argument("--engine", default="EPIE", choices=sorted(ENGINES))
    p.add_argument("--sweeps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truth-probe", action="store_true")
    p.add_argument("--position-correction", action="store_true")
    p.add_argument("--opr", type=int, default=0, help="OPR modes (0: none)")
    p.add_argument("--flux", action="store_true", help="optimise the intensity variation")
    p.add_argument("--truth-positions", action="store_true", help="start at /truth/positions_px")
    p.add_argument("--self-test", action="store_true", help="import ptychi and exit")
    args = p.parse_args()
    set_threads(args.threads)
    if args.self_test:
        install_torchvision_stand_in()
        importlib.import_module("ptychi.api")

        print("ptychi imports with the torchvision stand-in")
        return
    if not (args.data and args.out):
        p.error("DATA and OUT are required")
    run(args)
    print(json.dumps({"ok": args.out}))


if __name__ == "__main__":
    main()
