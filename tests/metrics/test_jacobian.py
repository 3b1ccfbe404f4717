"""metrics/jacobian.py: official SDlogJ (+3 shift, clip, 2-voxel crop, mask == 1) and the folding fraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regbench.metrics import jacobian
from regbench.metrics.jacobian import jacobian_det_cropped, plausibility
from regbench.spatial import jacobian_det


def affine_field(matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """u(x) = (A - I) x, so that x + u(x) = A x and det J = det A everywhere."""
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"), axis=-1)
    return grid @ (matrix - np.eye(len(shape))).T


def test_constant_field_has_sdlogj_zero_and_no_folding():
    # J = I everywhere: log(1 + 3) = log 4 at every voxel, so the std is 0 (to rounding).
    disp = np.zeros((12, 10, 11, 3))
    disp[..., 0], disp[..., 2] = 2.5, -1.0
    det = jacobian_det_cropped(disp)
    assert det.shape == (8, 6, 7)
    np.testing.assert_array_equal(det, 1.0)
    result = plausibility(disp)
    assert result.sdlogj < 1e-14 and result.folding_fraction == 0.0


def test_affine_field_has_its_determinant_everywhere():
    matrix = np.array([[1.2, 0.1, 0.0], [0.05, 0.9, 0.2], [0.0, -0.1, 1.1]])
    disp = affine_field(matrix, (10, 12, 9))
    np.testing.assert_allclose(jacobian_det_cropped(disp), np.linalg.det(matrix), rtol=1e-12)
    assert plausibility(disp).sdlogj < 1e-12  # constant det: std of a constant


def test_reflection_folds_everywhere():
    # x -> (-x0, x1, x2) has det J = -1 < 0 at every voxel; +3 gives 2 > 0, so SDlogJ is still 0.
    result = plausibility(affine_field(np.diag([-1.0, 1.0, 1.0]), (9, 9, 9)))
    assert result.folding_fraction == 1.0 and result.sdlogj < 1e-14


def sine_field(amplitude: float, shape=(36, 6, 6)) -> np.ndarray:
    """u0 = A sin(2 pi x0 / 8): central differences give d u0/d x0 = A sin(pi/4) cos(pi x0 / 4)."""
    disp = np.zeros((*shape, 3))
    disp[..., 0] = amplitude * np.sin(2 * np.pi * np.arange(shape[0]) / 8)[:, None, None]
    return disp


R = np.sqrt(2)


def test_folding_field_with_known_share_of_negative_determinants():
    # A = 2 sqrt(2): det J = 1 + 2 cos(pi i / 4), which is <= 0 iff i mod 8 is 3, 4 or 5. The crop keeps
    # rows i = 2..33, 32 consecutive rows = 4 periods, so exactly 3/8 of the voxels fold.
    # The +3 shift keeps every value positive: det + 3 over one period is 6, 4+r, 4, 4-r, 2, 4-r, 4, 4+r
    # with r = sqrt(2); the crop holds whole periods, so SDlogJ is the std of their logs.
    result = plausibility(sine_field(2 * R))
    assert result.folding_fraction == pytest.approx(3 / 8, abs=1e-15)
    assert result.sdlogj == pytest.approx(np.std(np.log([6, 4 + R, 4, 4 - R, 2, 4 - R, 4, 4 + R])), rel=1e-12)


def test_values_below_minus_three_are_clipped_before_the_log():
    # A = 8 sqrt(2): det J = 1 + 8 cos(pi i / 4), so det + 3 = 4 + 8 cos(pi i / 4): 12, 4+4r, 4, 4-4r, -4,
    # 4-4r, 4, 4+4r. 4 - 4r and -4 are <= 0 and clip to 1e-9 (log = -20.72...).
    shifted = np.clip([12, 4 + 4 * R, 4, 4 - 4 * R, -4, 4 - 4 * R, 4, 4 + 4 * R], 1e-9, 1e9)
    result = plausibility(sine_field(8 * R))
    assert result.sdlogj == pytest.approx(np.std(np.log(shifted)), rel=1e-12)
    assert result.folding_fraction == pytest.approx(3 / 8, abs=1e-15)  # 1 + 8 cos <= 0 at i mod 8 in 3..5


@pytest.mark.parametrize("order", ["C", "F"])
def test_mask_keeps_only_voxels_equal_to_one(order):
    # Along axis 0 the field varies as above; a mask of 1 on rows 8..15 (one period, inside the crop) and of
    # 2 elsewhere (hidden by the official MaskedArray(x, 1 - mask)) keeps exactly one period: same SDlogJ as
    # before. Rows 8..11 fold at i = 11 only (i mod 8 in 3..5 within 8..15: 11, 12, 13): 3/8 again.
    disp = np.asarray(sine_field(2 * R), order=order)
    mask = np.full((36, 6, 6), 2, dtype=np.int16)
    mask[8:16] = 1
    result = plausibility(disp, np.asarray(mask, order=order))
    assert result.sdlogj == pytest.approx(np.std(np.log([6, 4 + R, 4, 4 - R, 2, 4 - R, 4, 4 + R])), rel=1e-12)
    assert result.folding_fraction == pytest.approx(3 / 8, abs=1e-15)
    empty = plausibility(disp, np.zeros_like(mask))
    assert np.isnan(empty.sdlogj) and np.isnan(empty.folding_fraction)


def test_streamed_statistics_equal_numpy_on_the_whole_volume(rng, monkeypatch):
    from scipy import ndimage

    monkeypatch.setattr(jacobian, "_SLAB_VOXELS", 50)  # many slabs: exercises the merging of chunk statistics
    disp = np.stack([ndimage.gaussian_filter(rng.standard_normal((16, 14, 12)), 1.5) * 40 for _ in range(3)], -1)
    det = jacobian_det_cropped(disp)
    result = plausibility(disp)
    assert result.sdlogj == pytest.approx(np.log(np.clip(det + 3, 1e-9, 1e9)).std(), rel=1e-12)
    assert result.folding_fraction == np.mean(det <= 0) and 0 < result.folding_fraction < 0.5


def test_interior_matches_the_core_jacobian(rng):
    from scipy import ndimage

    disp = np.stack([ndimage.gaussian_filter(rng.standard_normal((14, 13, 12)), 2) * 4 for _ in range(3)], -1)
    core = jacobian_det(torch.from_numpy(np.moveaxis(disp, -1, 0)[None].copy()), boundary="zero")[0].numpy()
    np.testing.assert_allclose(jacobian_det_cropped(disp), core[2:-2, 2:-2, 2:-2], rtol=1e-12, atol=1e-12)
    fortran = np.asfortranarray(disp)  # NIfTI's memory order takes the transposed path
    np.testing.assert_allclose(jacobian_det_cropped(fortran), core[2:-2, 2:-2, 2:-2], rtol=1e-12, atol=1e-12)


def test_2d_affine_field():
    matrix = np.array([[1.3, 0.2], [-0.1, 0.8]])
    det = jacobian_det_cropped(affine_field(matrix, (9, 10)))
    assert det.shape == (5, 6)
    np.testing.assert_allclose(det, np.linalg.det(matrix), rtol=1e-12)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="field"):
        jacobian_det_cropped(np.zeros((3, 8, 8, 8)))
    with pytest.raises(ValueError, match="more than 4"):
        plausibility(np.zeros((4, 8, 8, 3)))
    with pytest.raises(ValueError, match="mask shape"):
        plausibility(np.zeros((8, 8, 8, 3)), np.ones((8, 8, 7)))
