"""Images and label maps: an array in nibabel voxel order plus the affine that places it in the world.

Geometry lives in one place, the 4x4 affine; spacing is derived from it. 2D images keep a 4x4 affine too
(the third axis is a unit slice), so NIfTI IO is the same for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Shape = tuple[int, ...]
Spacing = tuple[float, ...]


def _default_affine() -> np.ndarray:
    return np.eye(4)


@dataclass(frozen=True, eq=False)
class Image:
    """An intensity image.

    Attributes:
        data: array of shape (H, W) or (H, W, D), in nibabel array order; float32 for intensities.
        affine: 4x4 voxel-to-world (RAS, mm) matrix.
    """

    data: np.ndarray
    affine: np.ndarray = field(default_factory=_default_affine)

    def __post_init__(self) -> None:
        if self.data.ndim not in (2, 3):
            raise ValueError(f"{type(self).__name__}(): expected a 2D or 3D array, got shape {self.data.shape}")
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"{type(self).__name__}(): affine must be 4x4, got {affine.shape}")
        object.__setattr__(self, "affine", affine)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def shape(self) -> Shape:
        return tuple(self.data.shape)

    @property
    def spacing(self) -> Spacing:
        """Voxel size in mm along each array axis (column norms of the affine)."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return tuple(float(s) for s in norms[: self.ndim])

    def __repr__(self) -> str:
        spacing = ", ".join(f"{s:g}" for s in self.spacing)
        return f"{type(self).__name__}(shape={self.shape}, spacing=({spacing}), dtype={self.data.dtype})"


class LabelMap(Image):
    """A segmentation: integer labels, always resampled with nearest neighbour so no new labels appear."""


def affine_from_spacing(spacing: Spacing, origin: tuple[float, ...] | None = None) -> np.ndarray:
    """A diagonal voxel-to-world affine for an axis-aligned grid (2D spacing gets a unit third axis)."""
    affine = np.eye(4)
    full = list(spacing) + [1.0] * (3 - len(spacing))
    affine[[0, 1, 2], [0, 1, 2]] = full
    if origin is not None:
        affine[: len(origin), 3] = origin
    return affine
