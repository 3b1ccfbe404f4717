"""ITK physical-space fields to Learn2Reg displacements: known answers by hand, ITK's own readers and resampler
as independent references, and real ANTs and elastix registrations on grids that differ in every respect."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regbench import io, spatial
from regbench.errors import RegbenchError
from regbench.image import Image, affine_from_spacing
from regbench.itk_transform import ItkGeometry, disp_from_physical_field, itk_error_reason
from regbench.registry import method_class


def _rotation(angles: tuple[float, float, float]) -> np.ndarray:
    """Rotation by ``angles`` (radians) about x, then y, then z."""
    (cx, cy, cz), (sx, sy, sz) = np.cos(angles), np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _affine(rotation: np.ndarray, spacing: tuple[float, ...], origin: tuple[float, ...]) -> np.ndarray:
    """A voxel-to-RAS affine with the given axes (columns of ``rotation``, may include a flip)."""
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def _centred(rotation: np.ndarray, spacing: tuple[float, ...], shape: tuple[int, ...],
              centre: tuple[float, ...]) -> np.ndarray:
    """``_affine`` with the origin chosen so that the grid's centre lies at ``centre`` (RAS mm)."""
    affine = _affine(rotation, spacing, (0.0, 0.0, 0.0))
    affine[:3, 3] = np.asarray(centre) - affine[:3, :3] @ ((np.array(shape) - 1) / 2)
    return affine


def _grid(shape: tuple[int, ...]) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"), axis=-1)


# Known answers -------------------------------------------------------------------------------------------------


def test_a_zero_field_on_one_grid_is_a_zero_displacement():
    image = Image(np.zeros((5, 6, 7), np.float32), _affine(_rotation((0.3, -0.2, 1.0)), (1.5, 0.7, 2.0), (9, -4, 3)))
    disp = disp_from_physical_field(np.zeros((5, 6, 7, 3)), image, image)
    np.testing.assert_allclose(disp.data, 0, atol=1e-5)


def test_lps_field_in_2d_by_hand():
    # RAS axes (2 mm, 3 mm): in LPS both axes point the other way, so +4 mm along LPS x is -2 voxels along
    # axis 0, and +6 mm along LPS y is -2 voxels along axis 1.
    image = Image(np.zeros((4, 5), np.float32), affine_from_spacing((2.0, 3.0), (10.0, -5.0)))
    geometry = ItkGeometry.from_image(image)
    np.testing.assert_allclose(geometry.origin, [-10.0, 5.0])
    np.testing.assert_allclose(geometry.spacing, [2.0, 3.0])
    np.testing.assert_allclose(geometry.direction, -np.eye(2))
    disp = disp_from_physical_field(np.broadcast_to([4.0, 6.0], (4, 5, 2)).copy(), image, image)
    np.testing.assert_allclose(disp.data, np.broadcast_to([-2.0, -2.0], (4, 5, 2)), atol=1e-6)


def test_permuted_and_flipped_axes_in_3d_by_hand():
    # Axis 0 runs along RAS +y at 2 mm (LPS -y), axis 1 along RAS -x at 1 mm (LPS +x), axis 2 along z at 3 mm.
    # LPS field (1, 4, 6) mm: 1 mm along LPS x = +1 voxel on axis 1; 4 mm along LPS y = -2 voxels on axis 0;
    # 6 mm along z = +2 voxels on axis 2.
    axes = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    image = Image(np.zeros((3, 4, 5), np.float32), _affine(axes, (2.0, 1.0, 3.0), (7.0, 8.0, 9.0)))
    geometry = ItkGeometry.from_image(image)
    np.testing.assert_allclose(geometry.origin, [-7.0, -8.0, 9.0])
    np.testing.assert_allclose(geometry.direction, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]])
    disp = disp_from_physical_field(np.broadcast_to([1.0, 4.0, 6.0], (3, 4, 5, 3)).copy(), image, image)
    np.testing.assert_allclose(disp.data, np.broadcast_to([-2.0, 1.0, 2.0], (3, 4, 5, 3)), atol=1e-6)


def test_fixed_and_moving_grids_may_differ():
    # Moving: 0.5 mm voxels with its origin 5 mm further along RAS x. Fixed voxel x sits at x mm, which is moving
    # voxel (x - 5) / 0.5 along axis 0: a zero physical field gives u_0(x) = (x - 5) / 0.5 - x = x - 10.
    fixed = Image(np.zeros((8, 3, 2), np.float32), affine_from_spacing((1.0, 1.0, 1.0)))
    moving = Image(np.zeros((20, 6, 4), np.float32), affine_from_spacing((0.5, 0.5, 0.5), (5.0, 0.0, 0.0)))
    disp = disp_from_physical_field(np.zeros((8, 3, 2, 3)), fixed, moving)
    x = _grid((8, 3, 2))
    np.testing.assert_allclose(disp.data[..., 0], x[..., 0] - 10, atol=1e-6)
    np.testing.assert_allclose(disp.data[..., 1:], x[..., 1:], atol=1e-6)  # (y - 0) / 0.5 - y = y


def test_index_and_physical_points_round_trip():
    rng = np.random.default_rng(5)
    image = Image(np.zeros((6, 7, 8), np.float32), _affine(_rotation((0.4, 0.9, -1.3)) @ np.diag([1, -1, 1]),
                                                           (0.8, 1.7, 2.5), (-30, 12, 4)))
    geometry = ItkGeometry.from_image(image)
    index = rng.uniform(-2, 9, size=(50, 3))
    np.testing.assert_allclose(geometry.physical_to_index(geometry.index_to_physical(index)), index, atol=1e-10)
    # The LPS point of a voxel is its RAS point (from the NIfTI affine) with x and y negated.
    ras = index @ image.affine[:3, :3].T + image.affine[:3, 3]
    np.testing.assert_allclose(geometry.index_to_physical(index), ras * [-1, -1, 1], atol=1e-10)


def test_bad_input_is_refused():
    image = Image(np.zeros((4, 5, 6), np.float32))
    with pytest.raises(RegbenchError, match=r"expected a field of shape \(4, 5, 6, 3\)"):
        disp_from_physical_field(np.zeros((6, 5, 4, 3)), image, image)
    sheared = np.eye(4)
    sheared[0, 1] = 0.5
    with pytest.raises(RegbenchError, match="orthogonal voxel axes"):
        ItkGeometry.from_image(Image(np.zeros((4, 5, 6), np.float32), sheared))
    oblique = np.eye(4)
    oblique[:3, :3] = _rotation((0.3, 0.0, 0.0))
    with pytest.raises(RegbenchError, match="2D image must lie in the first two world axes"):
        ItkGeometry.from_image(Image(np.zeros((4, 5), np.float32), oblique))
    with pytest.raises(RegbenchError, match="NaN or inf"):
        disp_from_physical_field(np.full((4, 5, 6, 3), np.nan), image, image)


def test_error_reason_is_the_last_itk_description_or_else_the_last_line():
    log = ("itk::ExceptionObject (0x559b)\nLocation: \"ElastixTemplate - Run()\"\nFile: /src/itkFilter.hxx\n"
           "Description: ITK ERROR: RecursiveGaussianImageFilter(0x559bb4a426a0): Too few pixels.\n\n"
           "Error occurred during actual registration.\n")
    assert itk_error_reason(log) == "RecursiveGaussianImageFilter: Too few pixels."
    assert itk_error_reason("Traceback (most recent call last):\n  ...\nRuntimeError: exit status 1\n\n") == (
        "RuntimeError: exit status 1")
    assert itk_error_reason("") == "no message"


# ITK as the reference ----------------------------------------------------------------------------------------


GEOMETRIES = {
    3: (_rotation((0.35, -0.25, 2.6)) @ np.diag([1.0, -1.0, 1.0]), (1.2, 0.8, 2.5), (-40.0, 22.0, 13.0)),
    2: (np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), (1.5, 0.75, 1.0), (12.0, -7.0, 0.0)),
}


@pytest.mark.parametrize("ndim", [2, 3])
def test_geometry_is_what_itk_and_ants_read_from_the_nifti_file(ndim, tmp_path):
    itk = pytest.importorskip("itk")
    shape = (9, 7, 5)[:ndim]
    rotation, spacing, origin = GEOMETRIES[ndim]
    image = Image(np.arange(np.prod(shape), dtype=np.float32).reshape(shape), _affine(rotation, spacing, origin))
    io.write_image(tmp_path / "image.nii.gz", image)
    geometry = ItkGeometry.from_image(image)
    read = itk.imread(str(tmp_path / "image.nii.gz"), itk.F)
    np.testing.assert_allclose(np.array(read.GetOrigin()), geometry.origin, atol=1e-4)
    np.testing.assert_allclose(np.array(read.GetSpacing()), geometry.spacing, atol=1e-5)
    np.testing.assert_allclose(itk.array_from_matrix(read.GetDirection()), geometry.direction, atol=1e-5)
    # itk's arrays are (z, y, x): ITK's pixel (i, j[, k]) is the array's [i, j[, k]].
    np.testing.assert_array_equal(itk.array_from_image(read).T, image.data)
    ants = pytest.importorskip("ants")
    read = ants.image_read(str(tmp_path / "image.nii.gz"))
    np.testing.assert_allclose(read.origin, geometry.origin, atol=1e-4)
    np.testing.assert_allclose(read.direction, geometry.direction, atol=1e-5)
    np.testing.assert_array_equal(read.numpy(), image.data)


def test_the_converted_field_reaches_the_moving_voxels_itk_finds(tmp_path):
    """ITK's own index-to-point maps, for grids it reads from NIfTI files itself, as the reference: a fixed
    voxel x sits at ITK's point p(x); the field moves it to p + d(p), which ITK places at a continuous index of
    the moving grid; the Learn2Reg field must point there. Nothing of ItkGeometry enters the reference."""
    itk = pytest.importorskip("itk")
    rotation, spacing, _ = GEOMETRIES[3]
    moving = Image(np.zeros((26, 22, 18), np.float32), _centred(rotation, spacing, (26, 22, 18), (-30.0, 20.0, 10.0)))
    fixed_shape = (20, 24, 16)
    fixed = Image(np.zeros(fixed_shape, np.float32),
                  _centred(_rotation((0.1, 0.3, 2.4)), (1.1, 0.9, 1.2), fixed_shape, (-32.0, 21.0, 9.0)))
    io.write_image(tmp_path / "fixed.nii", fixed)
    io.write_image(tmp_path / "moving.nii", moving)
    fixed_itk = itk.imread(str(tmp_path / "fixed.nii"), itk.F)
    moving_itk = itk.imread(str(tmp_path / "moving.nii"), itk.F)
    index = _grid(fixed_shape)
    points = np.array([fixed_itk.TransformIndexToPhysicalPoint([int(i) for i in x])
                       for x in index.reshape(-1, 3)]).reshape(index.shape)
    # A field with an affine part about the grid centre, a shift and a smooth bend (LPS mm).
    linear = _rotation((0.05, -0.04, 0.08)) @ np.diag([1.04, 0.97, 1.02])
    field = (points - points.reshape(-1, 3).mean(0)) @ (linear - np.eye(3)).T + [1.5, -2.0, 1.0]
    field[..., 2] += 2.0 * np.sin(points[..., 0] / 6.0)
    expected = np.array([moving_itk.TransformPhysicalPointToContinuousIndex(q.tolist())
                         for q in (points + field).reshape(-1, 3)]).reshape(index.shape)

    disp = disp_from_physical_field(field, fixed, moving)
    np.testing.assert_allclose(index + disp.data, expected, atol=1e-4)
    assert np.abs(disp.data).max() > 4  # the field and the grids' difference move voxels by several voxels


# Real tools on grids that differ in shape, spacing, direction and origin -------------------------------------


def _tool_pair(synthetic_pair):
    """A pair whose moving image is the fixed one mapped by a known affine map plus a smooth warp, on grids
    that differ in every respect; returns (pair, fixed keypoints, moving keypoints), keypoints in voxels."""
    from regbench.image import LabelMap
    from regbench.pair import Case, Pair

    moving_shape, fixed_shape = (30, 28, 22), (28, 24, 20)
    blobs, _ = synthetic_pair(moving_shape, seed=8, disp=np.zeros((3, *moving_shape)))
    moving_geometry = _centred(_rotation((0.2, -0.15, 0.5)), (1.1, 1.3, 1.8), moving_shape, (-20.0, 35.0, 8.0))
    fixed_affine = _centred(_rotation((-0.1, 0.1, -0.3)) @ np.diag([1.0, 1.0, -1.0]), (1.2, 1.4, 1.7), fixed_shape,
                            (-23.0, 38.0, 5.0))
    # T (RAS mm, fixed space -> moving space): a 3-5 degree rotation and 3-5 % scalings about the fixed grid's
    # centre, a 2 mm shift and a 1.5 mm bend.
    linear = _rotation((0.07, -0.05, 0.09)) @ np.diag([1.05, 0.96, 1.03])
    index = _grid(fixed_shape)
    points = index @ fixed_affine[:3, :3].T + fixed_affine[:3, 3]
    centre = np.array([-23.0, 38.0, 5.0])
    mapped = (points - centre) @ linear.T + centre + [2.0, -1.0, 1.5]
    mapped[..., 1] += 1.5 * np.sin(points[..., 2] / 5.0)
    truth = (mapped - moving_geometry[:3, 3]) @ np.linalg.inv(moving_geometry[:3, :3]).T - index
    u = torch.from_numpy(np.moveaxis(truth, -1, 0))[None]
    fixed_data = spatial.warp(torch.from_numpy(blobs.moving.image.data.astype(np.float64))[None, None], u,
                              padding="zeros")[0, 0].numpy().astype(np.float32)
    fixed_labels = spatial.warp_labels(torch.from_numpy(blobs.moving.labels.data.astype(np.int64))[None, None],
                                       u)[0, 0].numpy().astype(np.int16)
    fixed = Case(blobs.fixed.id, Image(fixed_data, fixed_affine), LabelMap(fixed_labels, fixed_affine))
    moving = Case(blobs.moving.id, Image(blobs.moving.image.data, moving_geometry),
                  LabelMap(blobs.moving.labels.data, moving_geometry))
    rng = np.random.default_rng(3)
    inner = np.argwhere(fixed_labels[4:-4, 4:-4, 4:-4] > 0) + 4
    fixed_points = inner[rng.choice(len(inner), 40, replace=False)].astype(np.float64)
    moving_points = fixed_points + truth[tuple(fixed_points.astype(int).T)]
    return Pair(blobs.id, fixed, moving), fixed_points, moving_points


@pytest.mark.parametrize("name", ["ants", "elastix"])
def test_a_tool_field_converted_reproduces_the_tool_and_moves_keypoints_onto_their_match(name, synthetic_pair):
    pytest.importorskip({"ants": "ants", "elastix": "itk"}[name])
    pair, fixed_points, moving_points = _tool_pair(synthetic_pair)
    method = method_class(name).configure(scale="smoke")
    field, tool_warped = method.run_tool(pair)
    disp = disp_from_physical_field(field, pair.fixed.image, pair.moving.image)
    moving = torch.from_numpy(pair.moving.image.data.astype(np.float64))[None, None]
    warped = spatial.warp(moving, disp.to_torch(torch.float64))[0, 0].numpy()
    target = _grid(pair.fixed.image.shape) + disp.data
    inside = np.all((target >= 0) & (target <= np.array(pair.moving.image.shape) - 1), axis=-1)
    assert inside.mean() > 0.6
    # The same sample points in both (the field is the tool's transform at the fixed voxel centres), so only
    # float32 rounding separates them (measured: under 1e-5 of the range); the field shifted by half a voxel
    # differs by 27 % of the range.
    np.testing.assert_allclose(warped[inside], tool_warped[inside], atol=1e-4 * np.ptp(pair.moving.image.data))

    def tre_mm(points_disp: np.ndarray) -> np.ndarray:
        moved = fixed_points + points_disp
        return np.linalg.norm((moved - moving_points) @ pair.moving.image.affine[:3, :3].T, axis=1)

    estimated = disp.data[tuple(fixed_points.astype(int).T)]
    before, after = tre_mm(np.zeros_like(fixed_points)).mean(), tre_mm(estimated).mean()
    # Measured: 13.1 mm before; 0.55 mm after ANTs, 0.41 mm after elastix (voxels are 1.1-1.8 mm).
    assert before > 10.0
    assert after < 1.5, f"{name}: keypoint error {after:.2f} mm, {before:.2f} mm before"
