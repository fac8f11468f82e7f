"""Model near-field ptychography: a thin object, Fresnel propagation to the detector.

The generic model of ``ptyframe.physics.multislice`` with one slice and a near-field detector
propagator (Adorym supplement section D: "when working with near-field ptychography ... it can
be replaced with a Fresnel propagation function"): ``I_b = sum_k |P_d[O(S_b) P_k(. - f_b)]|^2``
with ``P_d`` of supp. eq. S6-S7 (``detector=fresnel``) or S8 (``detector=angular_spectrum``) over
``d = geometry.free_prop_m[0]`` (or ``free_prop_m``), refinable with ``refine_free_prop``.
Detector pixels are object pixels (apply the Fresnel scaling theorem to cone-beam data first).
"""

from __future__ import annotations

from dataclasses import dataclass

from ptyframe.physics.multislice import MultisliceConfig


@dataclass
class NearFieldConfig(MultisliceConfig):
    """Near-field ptychography: one thin object, Fresnel propagation to the detector."""

    name: str = "nearfield"
    n_slices: int = 1
    detector: str = "fresnel"
