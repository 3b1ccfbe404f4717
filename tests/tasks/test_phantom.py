"""Phantom building blocks: grid geometry, random fields, shapes, painting order, label tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from regbench.errors import DatasetError
from regbench.tasks.phantom import (Blob, Canvas, Grid, RandomField, Spine, ellipse_level, ellipsoid_radius,
                                    label_table, rotation_matrix, segment_distance, upsample_disp)
from regbench.tasks.spec import TaskSpec


def test_grid_covers_the_field_of_view_centred_on_the_origin():
    grid = Grid.covering((4, 5, 6), (8.0, 20.0, 6.0))
    assert grid.spacing == (2.0, 4.0, 1.0)
    points = grid.points_mm()
    # voxel i sits at (i - (n - 1) / 2) * spacing: axis 0 runs -3, -1, 1, 3
    np.testing.assert_allclose(points[0, :, 0, 0], [-3.0, -1.0, 1.0, 3.0])
    np.testing.assert_allclose(points.reshape(3, -1).mean(axis=1), 0.0, atol=1e-12)
    # the affine maps voxel indices to the same positions
    np.testing.assert_allclose(grid.affine @ [3, 4, 5, 1], [3.0, 8.0, 2.5, 1.0])


def test_grid_points_move_by_disp_in_voxels_and_index_of_inverts_them():
    grid = Grid.covering((4, 5, 6), (8.0, 20.0, 6.0))
    disp = np.zeros((3, 4, 5, 6))
    disp[1] = 0.5  # half a voxel along axis 1 is 2 mm
    moved = grid.points_mm(disp)
    np.testing.assert_allclose(moved[1] - grid.points_mm()[1], 2.0)
    np.testing.assert_allclose(grid.index_of(moved[:, 1, 2, 3][None])[0], [1.0, 2.5, 3.0])
    np.testing.assert_allclose(grid.to_voxels(np.full((3, 2), 4.0)), [[2.0, 2.0], [1.0, 1.0], [4.0, 4.0]])


def test_coarsened_grid_keeps_the_centre_and_field_of_view():
    grid = Grid.covering((8, 6, 4), (16.0, 12.0, 8.0))
    coarse = grid.coarsened(2)
    assert coarse.shape == (4, 3, 2) and coarse.spacing == (4.0, 4.0, 4.0)
    assert coarse.extent_mm == grid.extent_mm
    # coarse voxel j sits between fine voxels 2j and 2j + 1
    np.testing.assert_allclose(coarse.points_mm()[0, :, 0, 0], grid.points_mm()[0, ::2, 0, 0] + 1.0)
    with pytest.raises(ValueError, match="not divisible"):
        Grid.covering((7, 6, 4), (14.0, 12.0, 8.0)).coarsened(2)


def test_upsample_disp_scales_values_and_reproduces_linear_fields_inside():
    coarse = Grid((4, 4, 4), (2.0, 2.0, 2.0))
    fine = Grid((8, 8, 8), (1.0, 1.0, 1.0))
    # a field 0.1 * x (mm) along axis 0: 0.05 * x_mm coarse voxels becomes 0.1 * x_mm fine voxels
    linear = np.zeros((3, 4, 4, 4))
    linear[0] = 0.05 * coarse.points_mm()[0]
    up = upsample_disp(linear, 2)
    np.testing.assert_allclose(up[0, 1:-1], 0.1 * fine.points_mm()[0, 1:-1], atol=1e-12)
    np.testing.assert_allclose(up[1:], 0.0)
    np.testing.assert_array_equal(upsample_disp(linear, 1), linear)


def test_random_field_has_unit_rms_and_its_grid_evaluation_matches_interpolation():
    field = RandomField.draw(np.random.default_rng(0), (64.0, 48.0, 80.0), cell_mm=16.0, channels=2)
    nodes = np.stack(np.meshgrid(*[np.arange(n) for n in field.coefficients.shape[1:]], indexing="ij"))
    at_nodes = field(nodes * field.cell_mm + field.origin_mm.reshape(3, 1, 1, 1))
    np.testing.assert_allclose(np.sqrt(np.mean(at_nodes**2, axis=(1, 2, 3))), [1.0, 1.0])
    grid = Grid.covering((8, 6, 10), (64.0, 48.0, 80.0))
    np.testing.assert_allclose(field.on_grid(grid), field(grid.points_mm()), atol=1e-12)
    with pytest.raises(ValueError, match="beyond the field's lattice"):
        field.on_grid(Grid.covering((8, 6, 10), (640.0, 48.0, 80.0)))


def test_random_field_is_the_same_function_on_every_grid():
    field = RandomField.draw(np.random.default_rng(5), (64.0, 64.0, 64.0), cell_mm=16.0)
    again = RandomField.draw(np.random.default_rng(5), (64.0, 64.0, 64.0), cell_mm=16.0)
    np.testing.assert_array_equal(field.coefficients, again.coefficients)
    coarse, fine = Grid.covering((4, 4, 4), (64.0,) * 3), Grid.covering((12, 12, 12), (64.0,) * 3)
    # coarse voxel j and fine voxel 3j + 1 share their centre (-24 mm for j = 0)
    np.testing.assert_allclose(field.on_grid(coarse), field.on_grid(fine)[:, 1::3, 1::3, 1::3], atol=1e-12)


def test_ellipsoid_radius_is_one_on_the_rotated_surface():
    rotation = rotation_matrix((0.0, 0.0, 90.0))  # the ellipsoid's axis 0 now points along world axis 1
    points = np.array([[0.0, 0.0, 1.0], [10.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # columns: 3 points
    radius = ellipsoid_radius(points, np.zeros(3), np.array([10.0, 2.0, 5.0]), rotation)
    # (0, 10, 0) ends the rotated long axis: 1; (0, 0, 0) is the centre: 0; (1, 0, 0) is halfway along the
    # rotated axis of semi-axis 2: 0.5
    np.testing.assert_allclose(radius, [1.0, 0.0, 0.5])


def test_ellipse_level_is_the_distance_on_the_axes():
    x = np.array([12.0, 0.0, 0.0])
    y = np.array([0.0, 3.0, 0.0])
    # (12, 0) lies 2 mm outside a = 10; (0, 3) lies 2 mm inside b = 5; the centre is b = 5 mm inside
    np.testing.assert_allclose(ellipse_level(x, y, 10.0, 5.0), [2.0, -2.0, -5.0])


def test_blob_without_bump_is_its_ellipsoid():
    blob = Blob.draw(np.random.default_rng(1), (5.0, 0.0, 0.0), (10.0, 8.0, 6.0), bump=0.0, jitter=0.0)
    points = np.array([[5.0, 14.9, 15.1], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(blob.contains(points), [True, True, False])
    np.testing.assert_allclose(blob.level(points)[1], -0.01, atol=1e-12)


def test_segment_distance_known_answers():
    points = np.array([[0.0, 5.0, 13.0], [3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    distance, t = segment_distance(points, np.zeros(3), np.array([10.0, 0.0, 0.0]))
    # beside the start (3 mm), beside the middle (4 mm), 3 mm beyond the end
    np.testing.assert_allclose(distance, [3.0, 4.0, 3.0])
    np.testing.assert_allclose(t, [0.0, 0.5, 1.0])


def test_canvas_paints_first_come_first_served():
    points = np.arange(5, dtype=float)[None].repeat(3, axis=0)
    canvas = Canvas(points, ("air", "fat", "bone"), ("spine",))
    canvas.paint(canvas.open[0] < 2, "fat")
    canvas.paint(canvas.open[0] < 4, "bone", "spine")  # points 0 and 1 are taken already
    canvas.fill("air")
    np.testing.assert_array_equal(canvas.tissue, [1, 1, 2, 2, 0])
    np.testing.assert_array_equal(canvas.structure, [0, 0, 1, 1, 0])


def test_spine_labels_vertebral_bodies_and_discs_but_not_the_processes():
    spine = Spine(y_body=0.0, tilt=0.0, disc_phase=0.0)
    # vertebral body centre mid-vertebra, a disc, the canal, a spinous process (all at x = 0 but the process)
    points = np.array([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -27.0, -45.0], [20.0, 3.0, 20.0, 20.0]])
    canvas = Canvas(points, ("soft", "disc", "marrow", "cortical_bone", "csf"), ("spine",))
    spine.paint(canvas)
    canvas.fill("soft")
    np.testing.assert_array_equal(canvas.tissue, [2, 1, 4, 3])
    np.testing.assert_array_equal(canvas.structure, [1, 1, 0, 0])


def _spec(labels: dict[int, str]) -> TaskSpec:
    return TaskSpec(name="t", description="", anatomy="x", ndim=3, modalities={0: "CT"}, labels=labels,
                    keypoints=False, source="synthetic", generator="g", path=Path("tasks/t.yaml"))


def test_label_table_maps_structures_to_task_labels_and_names_unknown_ones():
    table = label_table(_spec({1: "spleen", 7: "liver"}), ("liver", "spleen", "aorta"))
    np.testing.assert_array_equal(table, [0, 7, 1, 0])
    with pytest.raises(DatasetError, match="tasks/t.yaml: label 2 'kidney' is not a structure"):
        label_table(_spec({2: "kidney"}), ("liver", "spleen"))
