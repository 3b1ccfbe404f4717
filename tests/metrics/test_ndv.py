"""metrics/ndv.py: LUMIR's non-diffeomorphic volume on fields whose folded volume is known exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from regbench.metrics import ndv
from regbench.metrics.ndv import ndv_percent


def mapped(shape: tuple[int, ...], first_axis) -> np.ndarray:
    """The displacement of x -> (f(x_0), x_1, ...): u_0 = f(x_0) - x_0, the other components 0."""
    disp = np.zeros((*shape, len(shape)))
    rows = np.arange(shape[0], dtype=np.float64)
    disp[..., 0] = (first_axis(rows) - rows).reshape((-1,) + (1,) * (len(shape) - 1))
    return disp


def folded_at(k: int):
    """x_0 -> x_0 up to the plane x_0 = k, mirrored beyond it (2k - x_0)."""
    return lambda rows: np.where(rows <= k, rows, 2 * k - rows)


@pytest.mark.parametrize("shape", [(12, 7, 9), (12, 9)])
def test_diffeomorphic_fields_have_no_folded_volume(rng, shape):
    assert ndv_percent(np.zeros((*shape, len(shape)))) == 0.0
    translation = np.broadcast_to(rng.normal(size=len(shape)) * 5, (*shape, len(shape)))
    assert ndv_percent(translation) == 0.0
    assert ndv_percent(mapped(shape, lambda rows: 1.7 * rows)) == 0.0  # a stretch: det 1.7 in every scheme


@pytest.mark.parametrize("shape", [(12, 7, 9), (12, 9)])
def test_a_reflection_folds_every_voxel(shape):
    # x_0 -> -x_0: every one-sided det is -1 (six times a tetrahedron of volume 1/6; twice a triangle of area
    # 1/2 in 2D) and each J* is -2 (the central tetrahedron, volume 1/3): 8 * 0.5/6 + 2 * 0.5 * 2/6 = 1 voxel
    # folded per voxel in 3D, 4 * 0.5/2 = 1 in 2D.
    assert ndv_percent(mapped(shape, lambda rows: -rows)) == pytest.approx(100.0, rel=1e-15)


@pytest.mark.parametrize("shape", [(12, 7, 9), (12, 9)])
def test_a_fold_at_a_plane_folds_a_known_block(shape):
    # Mirrored beyond x_0 = 6: rows 7..10 of the cropped rows 1..10 fold completely. At x_0 = 6 the forward
    # difference along x_0 is -1 and the backward one +1: the four (3D; two in 2D) '+x' schemes have det -1
    # and, in 3D, J*_2 (whose rows reach x_0 + 1) has det -2 while J*_1 (reaching x_0 - 1) has +2, so half
    # of that voxel folds: 4 * 0.5/6 + 0.5 * 2/6 = 0.5 (2D: 2 * 0.5/2 = 0.5). NDV = (4 + 0.5) / 10 rows.
    disp = mapped(shape, folded_at(6))
    assert ndv_percent(disp) == pytest.approx(45.0, rel=1e-14)
    # The mask (the fixed image > 0) keeps rows 0..6, cropped to 1..6: only the half-folded row 6 counts.
    mask = np.zeros(shape, dtype=bool)
    mask[:7] = True
    assert ndv_percent(disp, mask) == pytest.approx(100 * 0.5 / 6, rel=1e-14)


def test_empty_mask_gives_nan_and_bad_input_is_refused():
    disp = np.zeros((6, 6, 6, 3))
    assert np.isnan(ndv_percent(disp, np.zeros((6, 6, 6), dtype=bool)))
    with pytest.raises(ValueError, match="mask shape"):
        ndv_percent(disp, np.ones((6, 6, 5), dtype=bool))
    with pytest.raises(ValueError, match="field"):
        ndv_percent(np.zeros((3, 6, 6, 6)))
    with pytest.raises(ValueError, match="field"):
        ndv_percent(np.zeros((2, 6, 6, 3)))


def test_memory_order_and_slabs_do_not_change_the_value(rng, monkeypatch):
    # Random folding field: NIfTI's Fortran order takes the reversed working layout, where the ten schemes map
    # onto each other; tiny slabs exercise the halo rows. Equal up to the order of the final sums.
    disp = np.stack([ndimage.gaussian_filter(rng.standard_normal((14, 12, 10)), 1.0) for _ in range(3)], -1) * 8
    mask = rng.random((14, 12, 10)) > 0.3
    expected = ndv_percent(disp, mask)
    assert 1.0 < expected < 60.0
    assert ndv_percent(np.asfortranarray(disp), np.asfortranarray(mask)) == pytest.approx(expected, rel=1e-13)
    assert ndv_percent(disp.astype(np.float32), mask) == pytest.approx(
        ndv_percent(disp.astype(np.float32).astype(np.float64), mask), rel=1e-15)
    monkeypatch.setattr(ndv, "_SLAB_VOXELS", 1)
    assert ndv_percent(disp, mask) == pytest.approx(expected, rel=1e-13)
