"""TRE from landmarks stored as label maps, as LUMIR scores it (``calc_TRE`` in LUMIR's ``utils.py``).

LUMIR ships each landmark as a small blob with its own label in a NIfTI map (``landmarksVal/*.nii.gz``)
instead of Learn2Reg's keypoint CSV rows. Its evaluation (JHU-MedImage-Reg/LUMIR25_L2R25
``LUMIR25_Evalution_GC/``, LUMIR_L2R ``L2R_LUMIR_Eval/``) warps the moving landmark map with the field,
nearest neighbour (``map_coordinates(order=0)``, which ``metrics.warp`` reproduces), takes the centroid of
each landmark label in the fixed map and in the warped moving map, and scores their distance; the case
value is the plain mean over landmarks. Differences from the LUMIR code, none of which changes a number
on LUMIR's data:

- landmarks are the nonzero labels of the fixed map; LUMIR takes ``np.unique(fixed)[1:]``, every label
  but the smallest, which is the same whenever the map has background;
- distances are scaled by the **fixed** spacing, so they are in mm: both centroids are fixed-grid
  positions. LUMIR's ``calc_TRE`` leaves its ``spacing_mov=1`` default (voxels); LUMIR's images are 1 mm
  isotropic.

A landmark missing from the warped map (no fixed voxel is mapped into its blob) has no centroid: its error
is NaN and so is the case mean, as in LUMIR's code.

Centroids are sums of integer coordinates divided by voxel counts, both exact in float64, so they equal
LUMIR's bit for bit; only the voxels with a nonzero label are visited.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def centroids(label_map: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The mean voxel coordinate of each of ``labels`` (sorted, nonzero) in ``label_map``: (len(labels),
    ndim), NaN rows for labels that do not occur."""
    coordinates = np.nonzero(label_map)
    values = label_map[coordinates]
    index = np.searchsorted(labels, values)
    known = index < len(labels)
    known[known] = labels[index[known]] == values[known]
    index = index[known]
    counts = np.bincount(index, minlength=len(labels)).astype(np.float64)
    sums = [np.bincount(index, weights=c[known].astype(np.float64), minlength=len(labels)) for c in coordinates]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack(sums, axis=1) / counts[:, None]


def landmark_labels(fixed: np.ndarray) -> np.ndarray:
    """The landmarks of a fixed landmark map: its nonzero labels, in increasing order."""
    return np.unique(fixed[np.nonzero(fixed)])


def landmark_tre_mm(fixed: np.ndarray, warped: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The error of every landmark of the fixed map, in mm.

    Args:
        fixed: (H, W[, D]) integer landmark map of the fixed image (0 background, one label per landmark).
        warped: the moving landmark map warped onto the fixed grid (``metrics.warp.warp_labels_nearest``).
        spacing: the fixed image's voxel size in mm per axis.

    Returns:
        (labels, errors): the landmark labels in increasing order and the distance between each label's
        centroid in ``fixed`` and in ``warped`` (NaN where ``warped`` lacks the label).
    """
    if fixed.shape != warped.shape or len(spacing) != fixed.ndim:
        raise ValueError(f"landmark_tre_mm(): fixed {fixed.shape}, warped {warped.shape} and spacing "
                         f"{tuple(spacing)} do not match")
    labels = landmark_labels(fixed)
    offset = (centroids(warped, labels) - centroids(fixed, labels)) * np.asarray(spacing, dtype=np.float64)
    return labels, np.sqrt(np.sum(offset ** 2, axis=1))
