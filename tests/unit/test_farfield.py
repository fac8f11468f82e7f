"""Far-field forward model: sampling operator adjointness, modes, sub-pixel shifts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptyframe.physics.farfield import FarFieldPtychography
from ptyframe.physics.patches import check_inside, extract_patches, scatter_add_patches


def _rand(shape, seed):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.standard_normal(shape) + 1j * rng.standard_normal(shape))


def test_extract_and_scatter_are_adjoint():
    obj = _rand((20, 24), 0)
    corners = torch.tensor([[0, 0], [3, 5], [10, 14], [3, 5]])
    patches = _rand((4, 8, 8), 1)
    lhs = torch.vdot(extract_patches(obj, corners, (8, 8)).flatten(), patches.flatten())
    back = scatter_add_patches(torch.zeros_like(obj), patches, corners)
    rhs = torch.vdot(obj.flatten(), back.flatten())
    assert abs(complex(lhs - rhs)) < 1e-10


def test_intensity_sums_incoherent_modes_and_conserves_photons():
    model = FarFieldPtychography()
    obj = torch.ones(1, 16, 16, dtype=torch.complex128)
    probe = _rand((2, 8, 8), 2)
    pos = torch.tensor([[1.0, 2.0], [4.0, 4.0]], dtype=torch.float64)
    inten = model.intensities(obj, probe, pos)
    # vacuum object: photons per pattern = probe power summed over modes (Parseval)
    assert torch.allclose(inten.sum(dim=(-2, -1)), probe.abs().square().sum().expand(2))
    single = [model.intensities(obj, probe[k : k + 1], pos) for k in range(2)]
    assert torch.allclose(inten, single[0] + single[1])


def test_subpixel_position_moves_the_probe():
    model = FarFieldPtychography()
    obj = _rand((1, 24, 24), 3)
    probe = _rand((1, 8, 8), 4)
    whole = model.exit_waves(obj, probe, torch.tensor([[5.0, 6.0]], dtype=torch.float64))
    frac = model.exit_waves(obj, probe, torch.tensor([[5.0, 6.5]], dtype=torch.float64))
    assert not torch.allclose(whole, frac)
    # two half-pixel shifts of the probe = one whole-pixel roll of the probe
    p_shift = model.shifted_probes(probe, torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    assert torch.allclose(p_shift[0], torch.roll(probe, 1, dims=-1), atol=1e-10)


def test_positions_outside_object_are_named():
    with pytest.raises(ValueError, match="probe position 1"):
        check_inside(torch.tensor([[0.0, 0.0], [10.5, 0.0]]), (8, 8), (16, 16))
