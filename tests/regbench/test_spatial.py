"""Spatial operations: known answers, the Learn2Reg sign convention, and an independent scipy cross-check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from regbench import spatial


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


@pytest.mark.parametrize("shape", [(9, 11), (7, 8, 6)])
def test_zero_displacement_returns_the_moving_image(rng, shape):
    # Exact up to the rounding of the [-1, 1] normalisation in float64.
    moving = _t(rng.random((1, 1, *shape)))
    disp = torch.zeros(1, len(shape), *shape, dtype=torch.float64)
    np.testing.assert_allclose(spatial.warp(moving, disp).numpy(), moving.numpy(), atol=1e-12)


def test_constant_displacement_samples_moving_at_x_plus_t(rng):
    # warped(x) = moving(x + t): a constant t = (2, 0, -1) equals moving shifted by -t, away from the border.
    moving = rng.random((10, 12, 9))
    disp = torch.zeros(1, 3, 10, 12, 9, dtype=torch.float64)
    disp[:, 0], disp[:, 2] = 2.0, -1.0
    warped = spatial.warp(_t(moving)[None, None], disp)[0, 0].numpy()
    np.testing.assert_allclose(warped[:8, :, 1:], moving[2:, :, :-1], atol=1e-12)


@pytest.mark.parametrize("shape", [(12, 10), (10, 12, 9)])
def test_linear_warp_matches_scipy_inside_the_image(rng, shape):
    moving = rng.random(shape)
    disp = rng.normal(0.0, 1.5, (len(shape), *shape))
    warped = spatial.warp(_t(moving)[None, None], _t(disp)[None])[0, 0].numpy()
    coords = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")) + disp
    expected = ndimage.map_coordinates(moving, coords, order=1, mode="grid-constant")
    np.testing.assert_allclose(warped, expected, atol=1e-12)


def test_warp_labels_creates_no_new_labels_and_matches_scipy_nearest_inside(rng):
    shape = (10, 12, 9)
    labels = rng.integers(0, 5, shape)
    disp = rng.normal(0.0, 1.5, (3, *shape))
    warped = spatial.warp_labels(torch.from_numpy(labels)[None, None], _t(disp)[None])[0, 0].numpy()
    assert set(np.unique(warped)) <= set(range(5))
    coords = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")) + disp
    inside = np.all([(coords[i] >= 0) & (coords[i] <= n - 1) for i, n in enumerate(shape)], axis=0)
    expected = ndimage.map_coordinates(labels, coords, order=0)
    assert np.array_equal(warped[inside], expected[inside])


def test_compose_equals_warping_twice(rng):
    shape = (16, 15, 14)
    smooth = [ndimage.gaussian_filter(rng.normal(0, 6, (3, *shape)), (0, 3, 3, 3)) for _ in range(2)]
    first, second = _t(smooth[0])[None], _t(smooth[1])[None]
    moving = _t(ndimage.gaussian_filter(rng.random(shape), 2))[None, None]
    once = spatial.warp(moving, spatial.compose(first, second), padding="border")
    twice = spatial.warp(spatial.warp(moving, second, padding="border"), first, padding="border")
    interior = (slice(None), slice(None), *[slice(4, -4)] * 3)
    np.testing.assert_allclose(once[interior], twice[interior], atol=2e-3)


@pytest.mark.parametrize("shape", [(24, 20), (16, 18, 14)])
def test_svf_of_zero_is_zero_and_v_then_minus_v_is_identity(rng, shape):
    ndim = len(shape)
    assert torch.equal(spatial.integrate_svf(torch.zeros(1, ndim, *shape)), torch.zeros(1, ndim, *shape))
    velocity = _t(ndimage.gaussian_filter(rng.normal(0, 8, (ndim, *shape)), (0, *[3] * ndim)))[None]
    forward, backward = spatial.integrate_svf(velocity), spatial.integrate_svf(-velocity)
    assert forward.abs().max() > 1.5
    # exp(v) o exp(-v) = id up to linear-interpolation error: a small fraction of a voxel (measured 0.06 max).
    residual = spatial.compose(forward, backward)[(slice(None), slice(None), *[slice(3, -3)] * ndim)].abs()
    assert residual.max() < 0.1 and residual.mean() < 0.02


def test_integrated_svf_does_not_fold(rng):
    shape = (20, 20, 20)
    velocity = _t(ndimage.gaussian_filter(rng.normal(0, 40, (3, *shape)), (0, 3, 3, 3)))[None]
    assert velocity.abs().max() > 2
    assert spatial.jacobian_det(spatial.integrate_svf(velocity)).min() > 0


@pytest.mark.parametrize("ndim", [2, 3])
def test_jacobian_of_affine_field_is_det_a_everywhere(ndim):
    # u(x) = (A - I) x, so x + u(x) = A x and det J = det A at every voxel, border included (linear field).
    matrix = np.array([[1.2, 0.1, 0.0], [0.0, 0.9, 0.2], [0.05, 0.0, 1.1]])[:ndim, :ndim]
    shape = (8, 9, 7)[:ndim]
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"))
    disp = np.einsum("ij,j...->i...", matrix - np.eye(ndim), grid)
    det = spatial.jacobian_det(_t(disp)[None])
    np.testing.assert_allclose(det.numpy(), np.linalg.det(matrix), atol=1e-12)


def test_zero_boundary_gradient_matches_scipy_correlate_with_zero_padding(rng):
    disp = rng.normal(size=(3, 7, 8, 6))
    grad = spatial.spatial_gradient(_t(disp)[None], boundary="zero")[0].numpy()
    kernel = np.array([-0.5, 0.0, 0.5])
    for i in range(3):
        for j in range(3):
            weights = kernel.reshape([3 if a == j else 1 for a in range(3)])
            expected = ndimage.correlate(disp[i], weights, mode="constant", cval=0.0)
            np.testing.assert_allclose(grad[i, j], expected, atol=1e-12)


def test_folding_field_has_negative_jacobian():
    # u_0(x) = -2 x_0 maps x_0 to -x_0: det J = 1 - 2 = -1 everywhere.
    grid = np.stack(np.meshgrid(*[np.arange(6.0)] * 3, indexing="ij"))
    disp = np.zeros_like(grid)
    disp[0] = -2 * grid[0]
    np.testing.assert_allclose(spatial.jacobian_det(_t(disp)[None]).numpy(), -1.0, atol=1e-12)


def test_wrong_shapes_raise():
    with pytest.raises(ValueError, match="disp must be"):
        spatial.warp(torch.zeros(1, 1, 4, 4, 4), torch.zeros(1, 2, 4, 4, 4))
    with pytest.raises(ValueError, match="image must be"):
        spatial.warp(torch.zeros(1, 4, 4, 4), torch.zeros(1, 3, 4, 4, 4))
