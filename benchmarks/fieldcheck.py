"""Tabulate the field check's statistics on simulated far-field and near-field scans.

For each case and dose the table gives the lit fraction of the mean frame, the object pixel
the holograms' shifts imply over the pixel of the near-field rule (``-``: inconclusive) and
what the check decides when the scan is read as near field and as far field (``ok``,
``warn``, ``error``), so the thresholds of ``ptyframe.data.fieldcheck`` can be judged by their
margins. Cases (64 x 64 frames, 40 positions on a Fermat spiral, particle films):

* far field (``ptycho2d``): the default defocused focused beam (pupil 0.3 of the frame), a
  wider pupil (0.6), one that nearly fills the detector (0.9), a small Gaussian focus;
* near field, cone beam (``conebeam``, the issue's geometry): KB apertures giving beams of
  about a quarter, half, and more than the whole frame;
* near field, plane wave: a Gaussian beam of half and of more than the frame.

Far-field scans are written as CXI with a 5 m detector whose pitch gives the simulated 20 nm
pixel; cone-beam scans are read with the right ``data.focus_to_sample_m``.

    .venv/bin/python benchmarks/fieldcheck.py
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import h5py
import numpy as np

import ptyframe
from ptyframe.data.reader import EV_J
from ptyframe.errors import DataValidationError
from ptyframe.registry import BuildContext
from ptyframe.simulation.simulate import simulate_dataset

from _lib.results import Stamp, markdown_table, write_page

FAR = {
    "far, pupil 0.3 (default)": {"name": "focused"},
    "far, pupil 0.6": {"name": "focused", "pupil_diameter_frac": 0.6, "beam_diameter_frac": 0.3},
    "far, pupil 0.9": {"name": "focused", "pupil_diameter_frac": 0.9, "beam_diameter_frac": 0.3},
    "far, Gaussian focus": {"name": "gaussian", "fwhm_px": 4.0},
}
CONE = {
    "cone, beam 1/4 frame": 0.3e-3,
    "cone, beam 1/2 frame": 0.6e-3,
    "cone, beam > frame": 1.4e-3,
}
PLANE = {"plane, beam 1/2 frame": 32.0, "plane, beam > frame": 90.0}
DOSES = (1e2, 1e3, 1e4, 1e6)
#: Words of each error message -> what decided it.
REASONS = {
    "lights the whole detector": "lit everywhere",
    "mean frame is a bright centre": "bright centre",
    "the frames move": "shift vs pixel",
    "positions span": "object too large",
}


def far_file(reg, path: Path, probe: dict, photons: float) -> None:
    d = simulate_dataset(
        probe=probe,
        scan={"name": "fermat", "n_points": 40, "overlap": 0.7},
        registry=reg,
        window_px=64,
        photons_per_pattern=photons,
    )
    g = d.geometry
    pitch = g.wavelength_m * 5.0 / (64 * g.pixel_size_m)
    c = (g.positions_px + 32) * g.pixel_size_m
    with h5py.File(path, "w") as f:
        det = f.create_group("entry_1/instrument_1/detector_1")
        det["data"] = np.round(d.patterns[0]).astype(np.uint32)
        det["distance"] = 5.0
        det["x_pixel_size"] = det["y_pixel_size"] = pitch
        f["entry_1/instrument_1/source_1/energy"] = g.energy_ev * EV_J
        f["entry_1/sample_1/geometry_1/translation"] = np.c_[c[:, 1], c[:, 0], 0 * c[:, 0]]


def near_file(reg, path: Path, photons: float, aperture: float | None, fwhm: float | None) -> None:
    z1 = 3.65e-3 if aperture is not None else None
    sim = reg.build(
        "simulation",
        {
            "name": "conebeam",
            "window_px": 64,
            "photons_per_frame": photons,
            "focus_to_sample_m": z1,
            "step_m": 1.2e-6 if z1 else 1.2e-6 * 308,
        },
    )
    if aperture is not None:
        probe = reg.build(
            "probe",
            {"name": "kb", "aperture_m": [aperture, aperture], "focal_lengths_m": [0.25, 0.25]},
        )
    else:
        probe = reg.build("probe", {"name": "gaussian", "fwhm_px": fwhm})
    sim.run(
        reg.build("phantom", "particles"),
        probe,
        reg.build("scan", {"name": "fermat", "n_points": 40}),
    ).write(path, overwrite=True)


class Catch(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.n += 1


def decide(reg, path: Path, field: str, z1: float | None) -> str:
    """Return ``ok``, ``warn`` or ``error (what decided it)`` for reading ``path`` in ``field``."""
    catch = Catch()
    log = logging.getLogger("ptyframe")
    log.addHandler(catch)
    cfg = {"name": "file", "path": str(path), "field": field, "check_values": False}
    if z1 is not None and field == "near":
        cfg["focus_to_sample_m"] = z1
    try:
        reg.build("dataset", cfg, BuildContext(reg))
    except DataValidationError as exc:
        text = str(exc)
        why = next((w for k, w in REASONS.items() if k in text), "other")
        return f"error ({why})"
    finally:
        log.removeHandler(catch)
    return "warn" if catch.n else "ok"


def statistics(reg, path: Path, z1: float | None) -> tuple[float | None, float | None]:
    """Return (lit fraction, implied pixel / near-field pixel) of the file."""
    from ptyframe.data import fieldcheck

    cfg = {
        "name": "file",
        "path": str(path),
        "field": "near",
        "check_values": False,
        "check_field": False,
        "focus_to_sample_m": z1,
    }
    ds = reg.build("dataset", cfg, BuildContext(reg))
    g = ds.geometry
    stats = fieldcheck.field_statistics(
        lambda idx: ds.intensities(0, idx), g.positions_px * g.pixel_size_m, ds.n_tiles
    )
    ratio = None if stats.implied_pixel_m is None else stats.implied_pixel_m / g.pixel_size_m
    return stats.lit_fraction, ratio


def main() -> None:
    stamp = Stamp()
    reg = ptyframe.registry()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.cxi"
        cases = [(k, "far", v) for k, v in FAR.items()]
        cases += [(k, "cone", v) for k, v in CONE.items()] + [
            (k, "plane", v) for k, v in PLANE.items()
        ]
        for name, kind, arg in cases:
            for photons in DOSES:
                if kind == "far":
                    far_file(reg, path, arg, photons)
                    z1 = None
                else:
                    near_file(
                        reg,
                        path,
                        photons,
                        arg if kind == "cone" else None,
                        arg if kind == "plane" else None,
                    )
                    z1 = 3.65e-3 if kind == "cone" else None
                lit, ratio = statistics(reg, path, z1)
                rows.append(
                    [
                        name,
                        f"{photons:.0e}",
                        "-" if lit is None else f"{lit:.3f}",
                        "-" if ratio is None else f"{ratio:.3g}",
                        decide(reg, path, "near", z1),
                        decide(reg, path, "far", None),
                    ]
                )
                print(" | ".join(rows[-1]), flush=True)
    header = [
        "case",
        "photons / frame",
        "lit fraction",
        "implied / near pixel",
        "read as near",
        "read as far",
    ]
    table = markdown_table(header, rows)
    about = (
        "The field check's statistics (`ptyframe.data.fieldcheck`) on simulated scans "
        "(`benchmarks/fieldcheck.py` docstring): the lit fraction of the mean frame, the ratio "
        "of the object pixel implied by the holograms' shifts to the near-field rule's pixel "
        "(`-`: inconclusive), and the decision when the file is read as near field (cone "
        "beams with their z1) and as far field. Right answers: far-field scans `ok` read as "
        "far and refused read as near; near-field scans `ok` read as near and refused read "
        "as far; `warn` where the data cannot tell."
    )
    print(table)
    page = write_page("fieldcheck", "The field check on simulated scans", table, stamp, about)
    print(f"wrote {page}")


if __name__ == "__main__":
    main()
