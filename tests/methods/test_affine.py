"""affine: recovers known affine maps (mono- and multi-modal) and builds its dense field as documented.

Methods run on one thread: these tests check the algorithm, and one thread keeps their time steady on a
busy machine, where two OpenMP threads can run several times slower (the contract test uses the default).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regbench.errors import RegbenchError
from regbench.methods.affine import AffineParams, affine_disp, log_scale_penalty
from regbench.registry import get_method


def _affine_field(shape: tuple[int, ...], *, degrees: float, scale: float, shift: tuple[float, ...]) -> np.ndarray:
    """u(x) = M (x - c) + c + shift - x with M a rotation in the first two axes times ``scale``, c the centre:
    the Learn2Reg displacement of that affine map on a unit-spacing grid, written independently of the code."""
    ndim = len(shape)
    angle = np.deg2rad(degrees)
    matrix = scale * np.eye(ndim)
    matrix[:2, :2] = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    x = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"))
    centre = ((np.array(shape) - 1) / 2).reshape(-1, *[1] * ndim)
    return np.einsum("ij,j...->i...", matrix, x - centre) + centre + np.reshape(shift, (-1, *[1] * ndim)) - x


def _inner_error(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Displacement error (voxels) away from the border eighth, where content leaves the field of view."""
    inner = tuple(slice(n // 8, n - n // 8) for n in found.shape[:-1])
    return np.linalg.norm(found - truth, axis=-1)[inner]


def _zoomed_pair(synthetic_pair, shape, **kwargs):
    """8 degrees, 8 % zoom and a (2, -1.5, 1) voxel shift: 3.6 voxels of displacement on average in 3D."""
    truth = _affine_field(shape, degrees=8, scale=1.08, shift=(2.0, -1.5, 1.0)[: len(shape)])
    return synthetic_pair(shape, seed=11, disp=truth, **kwargs)


@pytest.mark.parametrize("shape", [(64, 56), (48, 44, 40)])
def test_recovers_rotation_scaling_and_translation(synthetic_pair, shape):
    pair, expected = _zoomed_pair(synthetic_pair, shape)
    error = _inner_error(get_method("affine", scale_prior=0, threads=1).register(pair).data, expected.data)
    # Measured: mean 0.03 (2D) and 0.06 (3D) voxels, max 0.06 and 0.12.
    assert error.mean() < 0.15 and error.max() < 0.3


def test_scale_prior_biases_a_true_zoom_only_slightly(synthetic_pair):
    pair, expected = _zoomed_pair(synthetic_pair, (48, 44, 40))
    error = _inner_error(get_method("affine", threads=1).register(pair).data, expected.data)
    # The prior pulls the 8 % zoom towards 1: measured 0.23 voxels mean, 0.49 max (see the module docstring).
    assert error.mean() < 0.35 and error.max() < 0.75


def test_recovers_an_affine_map_across_modalities_with_mutual_information(synthetic_pair):
    pair, expected = _zoomed_pair(synthetic_pair, (48, 44, 40), multimodal=True)
    assert pair.multimodal
    error = _inner_error(get_method("affine", threads=1).register(pair).data, expected.data)
    # Intensities go through a non-monotone map, so LNCC would fail; MI at half resolution measured 0.44
    # voxels mean, 1.0 max (the identity is off by 3.6 voxels on average).
    assert _inner_error(np.zeros_like(expected.data), expected.data).mean() > 3
    assert error.mean() < 0.6 and error.max() < 1.4


def test_log_scale_penalty_ignores_rotations_and_grows_as_an_axis_collapses():
    angle = torch.tensor(0.3, dtype=torch.float64)
    rotation = torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])
    assert log_scale_penalty(rotation).abs() < 1e-12
    # diag(2, 0.5): (ln 2)^2 + (ln 0.5)^2 = 2 (ln 2)^2 = 0.9609.
    stretch = torch.diag(torch.tensor([2.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(log_scale_penalty(rotation @ stretch), 2 * torch.log(torch.tensor(2.0)).double() ** 2)
    assert log_scale_penalty(torch.diag(torch.tensor([1.0, 0.01]))) > 20  # (ln 100)^2 = 21.2


def test_dense_field_of_the_identity_is_zero_and_of_a_translation_is_constant():
    span = torch.tensor([31.0, 15.0], dtype=torch.float64)  # 32 x 16 voxels of 1 mm
    extent = 15.5  # half the largest span
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    disp = affine_disp(identity, (32, 16), (32, 16), fixed_span=span, moving_span=span, extent=extent)
    assert torch.allclose(disp, torch.zeros_like(disp), atol=1e-12)
    # t = (0.2, -0.1) normalised units = (0.2, -0.1) * E mm = (3.1, -1.55) voxels at 1 mm spacing.
    shifted = identity.clone()
    shifted[:, 2] = torch.tensor([0.2, -0.1])
    disp = affine_disp(shifted, (32, 16), (32, 16), fixed_span=span, moving_span=span, extent=extent)
    assert torch.allclose(disp[0, 0], torch.full((32, 16), 3.1, dtype=torch.float64))
    assert torch.allclose(disp[0, 1], torch.full((32, 16), -1.55, dtype=torch.float64))


def test_identity_maps_grid_centre_to_grid_centre_on_a_coarser_level():
    # A 16 x 8 level of the 32 x 16 image: the identity matrix still gives zero displacement (same physical map).
    span = torch.tensor([31.0, 15.0], dtype=torch.float64)
    identity = torch.eye(2, 3, dtype=torch.float64)
    disp = affine_disp(identity, (16, 8), (16, 8), fixed_span=span, moving_span=span, extent=15.5)
    assert torch.allclose(disp, torch.zeros_like(disp), atol=1e-12)


def test_rotation_is_physical_on_anisotropic_grids():
    # Fixed and moving: 21 x 11 voxels of 1 x 2 mm (20 x 20 mm). A 90 degree rotation about the centre maps
    # the voxel one step along axis 0 from the centre (1 mm) to 1 mm along axis 1, i.e. half a voxel there.
    span = torch.tensor([20.0, 20.0], dtype=torch.float64)
    rotation = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    disp = affine_disp(rotation, (21, 11), (21, 11), fixed_span=span, moving_span=span, extent=10.0)
    target = torch.tensor([11.0, 5.0], dtype=torch.float64) + disp[0, :, 11, 5]
    assert torch.allclose(target, torch.tensor([10.0, 5.5], dtype=torch.float64))


def test_settings_are_checked():
    with pytest.raises(RegbenchError, match="one iteration count per pyramid factor"):
        AffineParams(factors=(4, 2), iterations=(10,))
    with pytest.raises(RegbenchError, match="coarse to fine"):
        AffineParams(factors=(1, 2), iterations=(10, 10))
    with pytest.raises(RegbenchError, match="similarity must be one of"):
        AffineParams(similarity="cc")
