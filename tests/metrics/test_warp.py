"""metrics/warp.py: the official nearest-neighbour label warp (map_coordinates order 0, constant 0)."""

from __future__ import annotations

import numpy as np
import pytest

from regbench.metrics.warp import warp_labels_nearest


def test_zero_field_returns_the_labels(rng):
    labels = rng.integers(0, 5, size=(7, 8, 9)).astype(np.int16)
    warped = warp_labels_nearest(labels, np.zeros((7, 8, 9, 3)))
    np.testing.assert_array_equal(warped, labels)
    assert warped.dtype == labels.dtype


def test_rounds_half_up_and_zero_outside_the_grid():
    # 1D profile along axis 0 of a (5, 1) image holding 1..5; a constant shift t samples index floor(x + t + 0.5)
    # where 0 <= x + t <= 4, else 0. t = 0.5: x=0 -> 0.5 -> index 1 (label 2) ... x=4 -> 4.5 > 4 -> outside (0).
    labels = np.arange(1, 6, dtype=np.int16).reshape(5, 1)
    disp = np.zeros((5, 1, 2))
    disp[..., 0] = 0.5
    np.testing.assert_array_equal(warp_labels_nearest(labels, disp)[:, 0], [2, 3, 4, 5, 0])
    # t = -0.3: x=0 -> -0.3 is outside (the official 'constant' mode; grid_sample would round it to 0).
    disp[..., 0] = -0.3
    np.testing.assert_array_equal(warp_labels_nearest(labels, disp)[:, 0], [0, 2, 3, 4, 5])


def test_shift_by_whole_voxels_is_a_roll_away_from_the_border(rng):
    labels = rng.integers(1, 4, size=(10, 9, 8)).astype(np.int16)
    disp = np.zeros((10, 9, 8, 3))
    disp[..., 1] = 2.0  # warped(x) = labels(x + 2 e1)
    warped = warp_labels_nearest(labels, disp)
    np.testing.assert_array_equal(warped[:, :7], labels[:, 2:])
    assert (warped[:, 7:] == 0).all()


@pytest.mark.parametrize("order", ["C", "F"])
def test_matches_scipy_map_coordinates_in_either_memory_order(rng, order):
    from scipy import ndimage

    labels = np.asarray(rng.integers(0, 6, size=(12, 11, 10)), dtype=np.int16, order=order)
    disp = np.asarray(rng.normal(0, 2, size=(12, 11, 10, 3)), order=order)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in labels.shape], indexing="ij"))
    expected = ndimage.map_coordinates(labels, grid + np.moveaxis(disp, -1, 0), order=0)
    np.testing.assert_array_equal(warp_labels_nearest(labels, disp), expected)


@pytest.mark.parametrize("shape", [(9, 8, 7), (10, 6)])
def test_ties_and_borders_match_scipy(rng, shape):
    """Quarter-voxel displacements hit .5 ties and the exact borders 0 and n - 1 often; huge ones go far out."""
    from scipy import ndimage

    labels = rng.integers(0, 9, size=shape).astype(np.int16)
    disp = rng.integers(-12, 13, size=(*shape, len(shape))) / 4.0
    disp[(0,) * len(shape)] = 1e30
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    expected = ndimage.map_coordinates(labels, grid + np.moveaxis(disp, -1, 0), order=0)
    np.testing.assert_array_equal(warp_labels_nearest(labels, disp), expected)


def test_2d(rng):
    labels = rng.integers(0, 3, size=(6, 7)).astype(np.uint8)
    disp = np.zeros((6, 7, 2))
    disp[..., 0] = 1.0
    np.testing.assert_array_equal(warp_labels_nearest(labels, disp)[:5], labels[1:])


def test_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="do not match"):
        warp_labels_nearest(np.zeros((4, 4), dtype=np.int16), np.zeros((4, 4, 4, 3)))
