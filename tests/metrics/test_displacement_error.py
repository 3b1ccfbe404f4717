"""metrics/displacement_error.py: error against the ground truth in mm, inside the fixed mask or body."""

from __future__ import annotations

import numpy as np
import pytest

from regbench.metrics.displacement_error import displacement_error_mm, evaluation_region


def test_constant_error_vector(rng):
    # u - u_true = (0.5, 0, -1) voxels everywhere; at moving spacing (2, 1, 1.5) mm that is
    # sqrt(1^2 + 0 + 1.5^2) = sqrt(3.25) mm at every voxel: mean and 95th percentile alike.
    truth = rng.normal(size=(6, 7, 8, 3))
    disp = truth + np.array([0.5, 0.0, -1.0])
    error = displacement_error_mm(disp, truth, (2.0, 1.0, 1.5))
    assert error.mean_mm == pytest.approx(np.sqrt(3.25), rel=1e-12)
    assert error.p95_mm == pytest.approx(np.sqrt(3.25), rel=1e-12)


def test_region_restricts_the_statistics():
    # Error 1 voxel in the first half of axis 0 and 3 voxels in the second, unit spacing.
    truth = np.zeros((10, 4, 4, 3))
    disp = truth.copy()
    disp[:5, ..., 0], disp[5:, ..., 0] = 1.0, 3.0
    region = np.zeros((10, 4, 4), dtype=bool)
    region[:5] = True
    assert displacement_error_mm(disp, truth, (1, 1, 1), region) == (1.0, 1.0)
    everywhere = displacement_error_mm(disp, truth, (1, 1, 1))
    assert everywhere.mean_mm == pytest.approx(2.0)
    assert everywhere.p95_mm == pytest.approx(3.0)  # half the voxels at 3: the 95th percentile is 3


def test_region_prefers_the_mask_then_the_labels_then_everything():
    mask = np.zeros((4, 4), dtype=np.int16)
    mask[0] = 1
    labels = np.zeros((4, 4), dtype=np.int16)
    labels[:, 0] = 3
    np.testing.assert_array_equal(evaluation_region((4, 4), mask, labels), mask > 0)
    np.testing.assert_array_equal(evaluation_region((4, 4), None, labels), labels > 0)
    np.testing.assert_array_equal(evaluation_region((4, 4), np.zeros_like(mask), labels), labels > 0)
    assert evaluation_region((4, 4), None, None).all()


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        displacement_error_mm(np.zeros((4, 4, 2)), np.zeros((4, 5, 2)), (1, 1))
