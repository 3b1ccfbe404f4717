"""Error of a displacement against the ground truth of a synthetic task, in mm (a regbench extension).

Only synthetic tasks know the true displacement, so no Learn2Reg metric corresponds. The per-voxel error is
the length of ``(u - u_true)`` scaled by the **moving** spacing - both fields point into the moving image,
so their difference is a distance there, the convention TRE uses - and it is summarised by its mean and
95th percentile (linear interpolation, ``np.percentile``'s default) inside a region of the fixed image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class DisplacementError(NamedTuple):
    mean_mm: float
    p95_mm: float


def evaluation_region(shape: Sequence[int], mask: np.ndarray | None, labels: np.ndarray | None) -> np.ndarray:
    """Where the error counts: the fixed mask if there is one, else the labelled body (labels > 0), else all."""
    for source in (mask, labels):
        if source is not None:
            if tuple(source.shape) != tuple(shape):
                raise ValueError(f"evaluation_region(): expected shape {tuple(shape)}, got {source.shape}")
            if (source > 0).any():
                return source > 0
    return np.ones(tuple(shape), dtype=bool)


def displacement_error_mm(disp: np.ndarray, truth: np.ndarray, moving_spacing: Sequence[float],
                          region: np.ndarray | None = None) -> DisplacementError:
    """Mean and 95th percentile of |u - u_true| in mm over ``region`` (all voxels if None).

    Args:
        disp, truth: (*spatial, ndim) displacements in voxels of the fixed grid (Learn2Reg layout).
        moving_spacing: voxel size of the moving image in mm per axis.
        region: boolean mask on the fixed grid.
    """
    if disp.shape != truth.shape:
        raise ValueError(f"displacement_error_mm(): field {disp.shape} and truth {truth.shape} differ in shape")
    spacing = np.asarray(moving_spacing, dtype=np.float64)
    if region is None:
        region = np.ones(disp.shape[:-1], dtype=bool)
    difference = (disp[region].astype(np.float64) - truth[region]) * spacing
    error = np.sqrt(np.einsum("ij,ij->i", difference, difference))
    if error.size == 0:
        return DisplacementError(float("nan"), float("nan"))
    return DisplacementError(float(error.mean()), float(np.percentile(error, 95)))
