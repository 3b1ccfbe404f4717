"""metrics/dice.py: Dice per label with the official NaN rule."""

from __future__ import annotations

import numpy as np
import pytest

from regbench.metrics.dice import case_mean, dice_per_label, label_counts


def cube(shape, start, side, label=1):
    labels = np.zeros(shape, dtype=np.int16)
    labels[tuple(slice(s, s + side) for s in start)] = label
    return labels


@pytest.mark.parametrize("k", [0, 1, 3, 7])
def test_cubes_shifted_by_k_voxels(k):
    # Two cubes of side n = 8 shifted by k along one axis overlap in n * n * (n - k) voxels:
    # Dice = 2 n^2 (n - k) / (2 n^3) = (n - k) / n.
    fixed = cube((20, 20, 20), (4, 4, 4), 8)
    warped = cube((20, 20, 20), (4 + k, 4, 4), 8)
    assert dice_per_label(fixed, fixed, warped, [1])[0] == pytest.approx((8 - k) / 8, rel=1e-15)


def test_mask_with_itself_is_one(rng):
    labels = rng.integers(0, 4, size=(9, 9, 9)).astype(np.int16)
    np.testing.assert_array_equal(dice_per_label(labels, labels, labels, [1, 2, 3]), [1.0, 1.0, 1.0])


def test_nan_where_absent_from_fixed_or_unwarped_moving():
    fixed = cube((10, 10, 10), (1, 1, 1), 4, label=1) + cube((10, 10, 10), (6, 6, 6), 3, label=2)
    moving = cube((10, 10, 10), (1, 1, 1), 4, label=1) + cube((10, 10, 10), (6, 6, 6), 3, label=3)
    # The warped map holds label 2 although the moving one does not: the official rule still gives NaN,
    # because it looks at the unwarped moving segmentation.
    warped = fixed.copy()
    dice = dice_per_label(fixed, moving, warped, [1, 2, 3])
    assert dice[0] == 1.0
    assert np.isnan(dice[1]) and np.isnan(dice[2])
    assert case_mean(dice) == 1.0


def test_empty_warped_label_scores_zero():
    fixed = cube((10, 10, 10), (1, 1, 1), 4)
    assert dice_per_label(fixed, fixed, np.zeros_like(fixed), [1])[0] == 0.0


def test_case_mean_of_all_nan_is_nan():
    assert np.isnan(case_mean(np.array([np.nan, np.nan])))


def test_label_counts_handles_absent_and_negative_labels():
    labels = np.array([[-2, 0, 1], [1, 5, 5]], dtype=np.int16)
    np.testing.assert_array_equal(label_counts(labels, [1, 2, 5, -2, 9]), [2, 0, 2, 1, 0])


def test_fortran_ordered_input_gives_the_same_result(rng):
    fixed = rng.integers(0, 4, size=(8, 9, 10)).astype(np.int16)
    warped = rng.integers(0, 4, size=(8, 9, 10)).astype(np.int16)
    expected = dice_per_label(fixed, fixed, warped, [1, 2, 3])
    for fixed_order, warped_order in (("F", "F"), ("F", "C"), ("C", "F")):  # NIfTI labels, .npz fields...
        got = dice_per_label(np.asarray(fixed, order=fixed_order), fixed, np.asarray(warped, order=warped_order),
                             [1, 2, 3])
        np.testing.assert_array_equal(got, expected)


def test_background_is_scored_when_listed():
    # LUMIR's configs list label 0. A 4^3 cube of label 1 in a 10^3 grid, warped one voxel along axis 0:
    # the cubes overlap in 48 voxels (Dice 48/64), the backgrounds (936 voxels each) in 936 - 16 = 920.
    fixed = cube((10, 10, 10), (1, 1, 1), 4)
    warped = cube((10, 10, 10), (2, 1, 1), 4)
    dice = dice_per_label(fixed, fixed, warped, [0, 1])
    np.testing.assert_allclose(dice, [920 / 936, 48 / 64], rtol=1e-15)


def test_rejects_shape_mismatch():
    labels = np.zeros((4, 4, 4), dtype=np.int16)
    with pytest.raises(ValueError, match="differ in shape"):
        dice_per_label(labels, labels, labels[:3], [1])
