"""Slice views: the known answers of zero and constant fields, the slice choice, uncertainty lengths; the
checkerboard that compares images of two modalities."""

import numpy as np
import pytest
import torch

from regbench.displacement import Displacement
from regbench.image import Image
from regbench.report.slices import checkerboard, choose_slice, slice_view
from regbench.spatial import jacobian_det, warp


def test_zero_field_keeps_the_image_and_a_regular_grid(rng):
    moving = Image(rng.random((12, 10, 8)).astype(np.float32))
    view = slice_view(moving, Displacement.zeros((12, 10, 8)), 3)
    np.testing.assert_allclose(view.warped, moving.data[:, :, 3], atol=1e-6)
    np.testing.assert_array_equal(view.grid[0], np.broadcast_to(np.arange(12)[:, None], (12, 10)))
    np.testing.assert_array_equal(view.grid[1], np.broadcast_to(np.arange(10)[None, :], (12, 10)))
    np.testing.assert_allclose(view.jacobian, 1.0)
    assert view.std is None


def test_constant_shift_moves_the_grid_and_samples_further_along(rng):
    # u = (2, 0): fixed voxel x samples moving at x + 2 along axis 0, so warped[i] = moving[i + 2]
    data = rng.random((16, 12)).astype(np.float32)
    field = np.zeros((16, 12, 2), dtype=np.float32)
    field[..., 0] = 2.0
    std = np.zeros_like(field)
    std[..., 0], std[..., 1] = 3.0, 4.0  # length 5 voxels
    view = slice_view(Image(data), Displacement(field, std=std), None)
    np.testing.assert_allclose(view.warped[:14], data[2:], atol=1e-6)
    np.testing.assert_allclose(view.grid[0], np.broadcast_to(np.arange(16)[:, None] + 2.0, (16, 12)))
    np.testing.assert_allclose(view.jacobian, 1.0, atol=1e-12)  # a translation keeps every volume
    np.testing.assert_allclose(view.std, 5.0)


def test_std_from_samples_when_no_std_is_given():
    samples = np.zeros((2, 8, 8, 2), dtype=np.float32)
    samples[1, ..., 0] = 2.0  # population std of (0, 2) is 1 on component 0, 0 on component 1
    view = slice_view(Image(np.ones((8, 8), np.float32)), Displacement(samples.mean(0), samples=samples), None)
    np.testing.assert_allclose(view.std, 1.0)


def test_slice_with_most_labelled_voxels_else_the_middle():
    labels = np.zeros((8, 8, 10), dtype=np.int16)
    labels[2:4, 2:4, 6] = 1
    labels[1:6, 1:6, 7] = 2
    assert choose_slice((8, 8, 10), labels) == 7
    assert choose_slice((8, 8, 10), None) == 5
    assert choose_slice((8, 8), None) is None


def test_checkerboard_alternates_square_tiles_of_the_two_images():
    first, second = np.zeros((16, 12)), np.ones((16, 12))
    board = checkerboard(first, second, tiles=4)  # 16 // 4 = 4-voxel tiles
    np.testing.assert_array_equal(board[:4, :4], 0)
    np.testing.assert_array_equal(board[4:8, :4], 1)
    np.testing.assert_array_equal(board[4:8, 4:8], 0)
    np.testing.assert_array_equal(board[:4, 8:12], 0)
    assert board.mean() == 0.5


@pytest.mark.parametrize("shape, index", [((20, 18, 16), 7), ((20, 18), None)])
def test_slice_equals_the_methods_own_warp_and_jacobian(rng, shape, index):
    # Displacements of 1.5 voxels (std) send border samples partly outside the image, where both give 0.
    image = rng.random(shape).astype(np.float32)
    field = (1.5 * rng.standard_normal((*shape, len(shape)))).astype(np.float32)
    view = slice_view(Image(image), Displacement(field), index)
    disp = Displacement(field).to_torch(torch.float64)
    warped = warp(torch.as_tensor(image, dtype=torch.float64)[None, None], disp)[0, 0].numpy()
    jacobian = jacobian_det(disp)[0].numpy()
    if index is not None:
        warped, jacobian = warped[:, :, index], jacobian[:, :, index]
    np.testing.assert_allclose(view.warped, warped, atol=1e-12)
    np.testing.assert_allclose(view.jacobian, jacobian, atol=1e-12)
