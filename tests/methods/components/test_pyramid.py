"""Pyramids: level grids, and displacements that keep their physical meaning across levels."""

from __future__ import annotations

import pytest
import torch

from regbench.errors import RegbenchError
from regbench.methods.components.pyramid import (
    check_pyramid, downsample_image, image_pyramid, level_shape, resize_disp,
)
from regbench.spatial import identity_grid


def test_level_shapes_halve_with_aligned_corners_and_stop_at_eight():
    assert level_shape((64, 64, 64), 2) == (32, 32, 32)
    assert level_shape((64, 65, 63), 4) == (16, 17, 16)  # (n - 1) // 4 + 1
    assert level_shape((20, 6), 4) == (8, 6)  # never below 8 voxels, nor above the image
    assert level_shape((20, 6), 1) == (20, 6)


def test_constant_displacement_keeps_its_physical_size_down_and_up():
    # 3 voxels on a 65-voxel axis is 3/64 of the span; on the 33-voxel level that is 1.5 voxels, and back 3.
    disp = torch.zeros(1, 2, 65, 33, dtype=torch.float64)
    disp[:, 0] = 3.0
    coarse = resize_disp(disp, (33, 17))
    torch.testing.assert_close(coarse[:, 0], torch.full((1, 33, 17), 1.5, dtype=torch.float64))
    assert not coarse[:, 1].any()
    torch.testing.assert_close(resize_disp(coarse, (65, 33)), disp)


def test_affine_displacement_stays_exactly_affine_on_another_grid():
    # u(x) = A x + b on the fine grid (voxels). Physical position p = x * h with h = 63/31 on the coarse grid,
    # so there u_c(y) = (A (h y) + b) / h = A y + b / h, evaluated independently here.
    a = torch.tensor([[0.1, -0.05], [0.02, 0.03]], dtype=torch.float64)
    b = torch.tensor([1.0, -2.0], dtype=torch.float64)
    fine = torch.einsum("ij,bj...->bi...", a, identity_grid((64, 64), dtype=torch.float64)) + b.view(1, 2, 1, 1)
    coarse_grid = identity_grid((32, 32), dtype=torch.float64)
    expected = torch.einsum("ij,bj...->bi...", a, coarse_grid) + (b * 31 / 63).view(1, 2, 1, 1)
    torch.testing.assert_close(resize_disp(fine, (32, 32)), expected)


def test_downsampling_keeps_a_constant_image_and_builds_the_levels_in_order():
    image = torch.full((1, 1, 40, 36, 30), 0.7, dtype=torch.float64)
    torch.testing.assert_close(downsample_image(image, 2), torch.full((1, 1, 20, 18, 15), 0.7, dtype=torch.float64))
    shapes = [tuple(level.shape[2:]) for level in image_pyramid(image, (4, 2, 1))]
    assert shapes == [(10, 9, 8), (20, 18, 15), (40, 36, 30)]


def test_pyramid_settings_are_checked():
    with pytest.raises(RegbenchError, match="one iteration count per pyramid factor"):
        check_pyramid(object(), (4, 2), (10,))
    with pytest.raises(RegbenchError, match="coarse to fine"):
        check_pyramid(object(), (1, 2), (5, 5))
