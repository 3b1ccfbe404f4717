"""metrics/tre.py: TRE in mm, cubic-spline sampling of the field, moving spacing."""

from __future__ import annotations

import numpy as np
import pytest

from regbench.metrics.tre import displacement_at, tre_mm


def test_constant_field_gives_the_shift_in_mm(rng):
    # Fixed and moving keypoints coincide; the field moves every point by t = (1, -2, 0.5) voxels, so every
    # TRE is |t * s| with s the moving spacing: sqrt((1*0.8)^2 + (2*1.5)^2 + (0.5*2)^2) = sqrt(10.64) mm.
    disp = np.broadcast_to(np.array([1.0, -2.0, 0.5]), (24, 22, 20, 3)).copy()
    points = rng.uniform(8, 12, size=(15, 3))  # interior: the spline of a constant is exact there
    tre = tre_mm(points, points, disp, moving_spacing=(0.8, 1.5, 2.0))
    np.testing.assert_allclose(tre, np.sqrt(10.64), rtol=1e-9)


def test_residual_is_scaled_by_the_moving_spacing_only(rng):
    # The fixed spacing never enters: moving keypoints one voxel further along axis 2 at 3 mm give 3 mm.
    disp = np.zeros((16, 16, 16, 3))
    fixed = rng.uniform(4, 11, size=(6, 3))
    moving = fixed + np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(tre_mm(fixed, moving, disp, moving_spacing=(1.0, 1.0, 3.0)), 3.0, rtol=1e-12)


def test_perfect_field_gives_zero():
    # Cubic splines reproduce a linear field, up to the influence of the border (the official 'constant'
    # mode), which decays like 0.268^d with the distance d in voxels: 0.268^17 * 2 voxels ~ 4e-10 here.
    grid = np.stack(np.meshgrid(*[np.arange(40.0)] * 3, indexing="ij"), axis=-1)
    disp = 0.05 * grid[..., [1, 2, 0]]
    fixed = np.array([[18.3, 19.1, 20.7], [21.5, 18.25, 19.0]])
    moving = fixed + 0.05 * fixed[:, [1, 2, 0]]
    np.testing.assert_allclose(tre_mm(fixed, moving, disp, (1.0, 1.0, 1.0)), 0.0, atol=1e-8)


def test_samples_with_cubic_splines_as_the_official_code():
    from scipy import ndimage

    rng = np.random.default_rng(7)
    disp = rng.normal(size=(10, 11, 12, 3))
    points = rng.uniform(0, 9, size=(5, 3))
    expected = np.stack([ndimage.map_coordinates(disp[..., c], points.T, order=3) for c in range(3)], axis=1)
    np.testing.assert_array_equal(displacement_at(disp, points), expected)


def test_2d():
    disp = np.full((12, 12, 2), 2.0)
    points = np.array([[5.0, 6.0]])
    assert tre_mm(points, points, disp, (0.5, 0.5))[0] == pytest.approx(np.sqrt(2.0), rel=1e-9)


def test_rejects_mismatched_keypoints():
    with pytest.raises(ValueError, match="keypoint arrays"):
        tre_mm(np.zeros((3, 3)), np.zeros((4, 3)), np.zeros((5, 5, 5, 3)), (1, 1, 1))


def test_sampling_precision_follows_the_requested_dtype(rng):
    # The official code samples NIfTI fields in float64 and .npz fields in float32.
    disp = rng.normal(size=(10, 10, 10, 3)).astype(np.float32)
    points = rng.uniform(2, 7, size=(4, 3))
    assert displacement_at(disp, points).dtype == np.float32
    np.testing.assert_array_equal(displacement_at(disp, points, np.dtype(np.float64)),
                                  displacement_at(disp.astype(np.float64), points))
