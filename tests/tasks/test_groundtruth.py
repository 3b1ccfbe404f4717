"""Every built-in synthetic task: its ground truth is right, checked with an independent warp (scipy)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from scipy import ndimage

from regbench.dataset import Task
from regbench.tasks.spec import list_tasks, load_spec

# Synthetic tasks whose generator knows the true displacement (cardiac_cohort's generated frames have none).
SYNTHETIC = [name for name in list_tasks() if load_spec(name).synthetic
             and getattr(importlib.import_module(f"regbench.tasks.{load_spec(name).generator}"), "GROUNDTRUTH", True)]


def _scipy_warp_labels(labels: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """Nearest-neighbour warp as the official evaluation does it: moving sampled at x + u(x)."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in labels.shape], indexing="ij"))
    return ndimage.map_coordinates(labels, grid + np.moveaxis(disp, -1, 0), order=0, mode="constant")


def _mean_dice(fixed: np.ndarray, warped: np.ndarray, labels: list[int]) -> float:
    scores = [2 * np.sum((fixed == k) & (warped == k)) / (np.sum(fixed == k) + np.sum(warped == k))
              for k in labels if (fixed == k).any()]
    return float(np.mean(scores))


def _pairs(task: Task):
    for split in ("val", "test"):
        for pair_id in task.pair_ids(split):
            yield pair_id, task.load_pair(pair_id), task.load_groundtruth(pair_id)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_true_field_aligns_labels_far_better_than_identity(generated_task, name):
    task = generated_task(name)
    labels = sorted(task.labels)
    assert labels, f"{name} defines no labels"
    for pair_id, pair, truth in _pairs(task):
        assert truth is not None, f"{name} {pair_id.key}: no ground truth"
        fixed = pair.fixed.labels.data
        moving = pair.moving.labels.data
        dice_true = _mean_dice(fixed, _scipy_warp_labels(moving, truth.data), labels)
        dice_identity = _mean_dice(fixed, moving, labels)
        assert dice_true >= 0.9, f"{name} {pair_id.key}: Dice with the true field {dice_true:.3f}"
        assert dice_identity <= dice_true - 0.05, (
            f"{name} {pair_id.key}: identity Dice {dice_identity:.3f} is not clearly below {dice_true:.3f}")


@pytest.mark.parametrize("name", SYNTHETIC)
def test_true_field_folds_nowhere(generated_task, name):
    import torch

    from regbench.spatial import jacobian_det

    task = generated_task(name)
    for pair_id, _, truth in _pairs(task):
        det = jacobian_det(truth.to_torch(torch.float64))
        assert det.min() > 0, f"{name} {pair_id.key}: det J min {det.min():.3f}"


@pytest.mark.parametrize("name", [n for n in SYNTHETIC if load_spec(n).keypoints])
def test_fixed_keypoints_moved_by_true_field_land_on_moving_keypoints(generated_task, name):
    task = generated_task(name)
    for pair_id, pair, truth in _pairs(task):
        fixed_kp, moving_kp = pair.fixed.keypoints, pair.moving.keypoints
        assert len(fixed_kp) >= 100
        moved = fixed_kp + np.stack([ndimage.map_coordinates(truth.data[..., c], fixed_kp.T, order=1)
                                     for c in range(task.ndim)], axis=1)
        error = np.linalg.norm(moved - moving_kp, axis=1).mean()
        assert error < 0.5, f"{name} {pair_id.key}: mean keypoint error {error:.3f} voxels"
        initial = np.linalg.norm(fixed_kp - moving_kp, axis=1).mean()
        assert initial > 1.0, f"{name} {pair_id.key}: keypoints barely move ({initial:.2f} voxels)"
