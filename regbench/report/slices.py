"""A registration seen on one slice: what the qualitative panels of the report show.

Slices of 3D volumes are taken across the last array axis (axial for the usual RAS-stored volumes) at the
index where the fixed labels cover the most voxels, so the slice shows the anatomy that is scored; without
labels, at the middle. Slice arrays keep the array order (axis 0 first); the plots draw axis 0 across.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from regbench.displacement import Displacement
from regbench.image import Image


@dataclass(frozen=True)
class SliceView:
    """One method's result on one slice.

    Attributes:
        warped: the moving image resampled onto the fixed grid, (H, W).
        grid: in-plane positions x + u(x) (voxels) of the slice's grid points, (2, H, W): where each fixed
            voxel samples the moving image, so a regular grid drawn through them shows the deformation.
        jacobian: det J of x -> x + u(x) (the full 3D Jacobian where the field is 3D), (H, W).
        std: length of the per-component displacement std (voxels), (H, W); None without uncertainty.
    """

    warped: np.ndarray
    grid: np.ndarray
    jacobian: np.ndarray
    std: np.ndarray | None = None


def choose_slice(shape: tuple[int, ...], labels: np.ndarray | None = None) -> int | None:
    """The index along the last axis to show a 3D volume at (see the module docstring); None for 2D."""
    if len(shape) == 2:
        return None
    if labels is not None and (labels > 0).any():
        return int(np.argmax((labels > 0).sum(axis=(0, 1))))
    return shape[-1] // 2


def take(volume: np.ndarray, index: int | None) -> np.ndarray:
    """The slice ``index`` along the last spatial axis of ``volume`` (the whole array for 2D: ``index`` None)."""
    return volume if index is None else volume[:, :, index]


def checkerboard(first: np.ndarray, second: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Square tiles taken alternately from two images of one shape, about ``tiles`` across the longer side.

    Where intensities do not correspond (fixed and moving of different modalities) a difference image shows
    contrast, not misalignment; across tile borders, edges run on where the registration is right and jump
    where it is not, whatever the modalities.
    """
    size = max(1, max(first.shape) // tiles)
    tile = np.indices(first.shape) // size
    return np.where(tile.sum(axis=0) % 2 == 0, first, second)


def slice_view(moving: Image, disp: Displacement, index: int | None) -> SliceView:
    """Warp ``moving`` with ``disp`` and cut the warped image, the deformed grid, det J and the uncertainty
    at slice ``index`` (None for 2D).

    In NumPy and SciPy, as the metrics are, so the plots job does not import torch: (bi/tri)linear sampling at
    x + u(x) with 0 outside the moving image (``regbench.spatial.warp``'s convention), and det J from
    central differences, one-sided at the border."""
    field = np.moveaxis(np.asarray(disp.data, dtype=np.float64), -1, 0)  # (ndim, *spatial)
    in_plane = [take(component, index) for component in field]
    positions = np.indices(in_plane[0].shape, dtype=np.float64)
    if index is not None:
        positions = np.concatenate([positions, np.full((1, *in_plane[0].shape), float(index))])
    positions += np.stack(in_plane)
    warped = ndimage.map_coordinates(np.asarray(moving.data, dtype=np.float64), positions, order=1,
                                     mode="grid-constant", cval=0.0)
    gradient = np.stack([np.stack(np.gradient(component), axis=-1) for component in field], axis=-2)
    jacobian = np.linalg.det(gradient + np.eye(field.shape[0]))
    std = None
    if disp.std is not None or disp.samples is not None:
        spread = disp.std if disp.std is not None else disp.samples.std(axis=0)
        std = np.linalg.norm(spread, axis=-1)
    return SliceView(
        warped=warped,
        grid=positions[:2],
        jacobian=take(jacobian, index),
        std=None if std is None else take(std, index),
    )
