"""Warping a moving label map exactly as the official Learn2Reg evaluation does, for Dice and HD95.

The official code samples the moving segmentation with ``scipy.ndimage.map_coordinates(order=0)`` at
x + u(x) in the default ``mode='constant'`` (cval 0). Its rule: along every axis the coordinate c must lie
in [0, n - 1], else the voxel is 0 (background); inside, the voxel takes index ``floor(c + 0.5)`` (half up).
That differs from ``regbench.spatial.warp_labels`` (``grid_sample``) at .5 ties and for points less than
half a voxel outside the grid, and those differences change scores, so metrics warp here and nowhere else.

The rule is applied directly with numpy on the same float64 coordinates (identity + u), slab by slab: the
result equals ``map_coordinates`` voxel for voxel (tested) at under half its cost.
"""

from __future__ import annotations

import numpy as np

from regbench.metrics.layout import fortran_layout, working, working_components

_SLAB_VOXELS = 500_000  # about 10 MB of coordinates and indices per slab


def warp_labels_nearest(moving: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """The moving label map sampled at x + u(x) for every fixed voxel x (nearest neighbour, 0 outside).

    Args:
        moving: (H, W[, D]) integer label map of the moving image.
        disp: (*fixed_spatial, ndim) displacement in voxels (Learn2Reg layout, channels last).

    Returns:
        Integer labels on the fixed grid, shape ``disp.shape[:-1]``, dtype of ``moving``.
    """
    ndim = disp.shape[-1]
    if moving.ndim != ndim or disp.ndim != ndim + 1:
        raise ValueError(f"warp_labels_nearest(): moving {moving.shape} and disp {disp.shape} do not match")
    reverse = fortran_layout(disp)
    components = working_components(disp, reverse)
    source = np.ascontiguousarray(working(moving, reverse))
    strides = [s // source.itemsize for s in source.strides]
    shape = components.shape[1:]
    out = np.empty(shape, dtype=moving.dtype)
    step = max(1, _SLAB_VOXELS // max(1, int(np.prod(shape[1:]))))
    for start in range(0, shape[0], step):
        stop = min(shape[0], start + step)
        index = np.zeros((stop - start, *shape[1:]), dtype=np.intp)
        inside = np.ones((stop - start, *shape[1:]), dtype=bool)
        for axis in range(ndim):
            grid = np.arange(start, stop) if axis == 0 else np.arange(shape[axis])
            coordinate = components[axis, start:stop] + grid.astype(np.float64).reshape(
                [-1 if a == axis else 1 for a in range(ndim)])
            inside &= (coordinate >= 0) & (coordinate <= source.shape[axis] - 1)
            np.clip(coordinate, 0, source.shape[axis] - 1, out=coordinate)  # outside points: any valid index
            coordinate += 0.5
            np.floor(coordinate, out=coordinate)
            index += coordinate.astype(np.intp) * strides[axis]
        out[start:stop] = np.where(inside, source.ravel()[np.where(inside, index, 0)], 0)
    return working(out, reverse)
