"""Target registration error on corresponding keypoints, as the official Learn2Reg evaluation computes it.

Official ``utils.compute_tre``: each displacement component is sampled at the fixed keypoints with
``scipy.ndimage.map_coordinates`` at its defaults - **cubic B-spline** (order 3, with prefiltering) and
``mode='constant'`` - the fixed keypoint is moved by it, and the residual to the corresponding moving
keypoint is scaled by the **moving** image's voxel spacing before taking its length, so TRE is in mm.
Keypoints are voxel coordinates in array order (the rows of the official CSV files).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike
from scipy import ndimage


def displacement_at(disp: np.ndarray, points: np.ndarray, dtype: DTypeLike | None = None) -> np.ndarray:
    """The field sampled at (N, ndim) voxel coordinates with cubic splines, as the official code: (N, ndim).

    The splines are computed in ``dtype`` (default: the field's own). It matters in the last digits: the
    official code samples a NIfTI field in float64 (``get_fdata``) and an ``.npz`` one in float32.
    """
    dtype = disp.dtype if dtype is None else dtype
    return np.stack([ndimage.map_coordinates(disp[..., c].astype(dtype, copy=False), points.T)
                     for c in range(disp.shape[-1])], axis=1)


def tre_mm(fixed_points: np.ndarray, moving_points: np.ndarray, disp: np.ndarray,
           moving_spacing: Sequence[float], *, dtype: DTypeLike | None = None) -> np.ndarray:
    """TRE of every keypoint pair in mm.

    Args:
        fixed_points: (N, ndim) keypoints of the fixed image, voxel coordinates.
        moving_points: (N, ndim) corresponding keypoints of the moving image (row i matches row i).
        disp: (*fixed_spatial, ndim) displacement in voxels, Learn2Reg layout.
        moving_spacing: voxel size of the moving image in mm per axis.
        dtype: the precision the field is sampled in (see ``displacement_at``).

    Returns:
        (N,) float64 distances in mm between the moved fixed keypoints and the moving keypoints.
    """
    ndim = disp.shape[-1]
    if fixed_points.shape != moving_points.shape or fixed_points.ndim != 2 or fixed_points.shape[1] != ndim:
        raise ValueError(f"tre_mm(): expected two (N, {ndim}) keypoint arrays, got {fixed_points.shape} "
                         f"and {moving_points.shape}")
    moved = fixed_points + displacement_at(disp, fixed_points, dtype)
    return np.linalg.norm((moved - moving_points) * np.asarray(moving_spacing, dtype=np.float64), axis=1)
