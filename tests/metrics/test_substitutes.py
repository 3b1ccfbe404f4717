"""metrics/substitutes.py: one missing/invalid-value rule per metric and task type."""

from __future__ import annotations

import numpy as np

from regbench.metrics.substitutes import missing_value, substitute, task_kind


def test_task_kind_is_labels_when_dice_is_scored():
    assert task_kind({"sdlogj", "dice", "hd95"}) == "labels"
    assert task_kind({"sdlogj", "dice", "tre"}) == "labels"  # ThoraxCBCT-like
    assert task_kind({"sdlogj", "tre"}) == "keypoints"


def test_missing_values():
    assert missing_value("dice", "labels") == 0.0
    assert missing_value("hd95", "labels") == 10.0
    assert missing_value("tre", "keypoints") == 30.0
    assert (missing_value("sdlogj", "labels"), missing_value("sdlogj", "keypoints")) == (1.5, 5.0)
    assert (missing_value("runtime", "labels"), missing_value("runtime", "keypoints")) == (5000.0, 3500.0)


def test_substitute_replaces_nan_and_inf_only():
    np.testing.assert_array_equal(substitute([0.5, np.nan, 0.0], "dice", "labels"), [0.5, 0.0, 0.0])
    np.testing.assert_array_equal(substitute([2.0, np.inf, np.nan], "hd95", "labels"), [2.0, 10.0, 10.0])
    np.testing.assert_array_equal(substitute([[np.nan]], "sdlogj", "keypoints"), [[5.0]])
