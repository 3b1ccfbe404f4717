"""Transforms of ITK-based tools (ANTs, elastix, SimpleITK) as Learn2Reg displacements.

ITK places the voxel with index i at the physical point p = o + D diag(s) i, in LPS millimetres (x towards the
patient's left, y posterior, z superior): origin o, spacing s and direction cosines D (columns: the unit
vector of each index axis). ITK's index runs fastest along x, which is axis 0 of a nibabel (and regbench)
array, so ``image.data[i, j, k]`` is ITK's pixel (i, j, k); ``itk.array_from_image`` reverses the axes,
ANTsPy's ``numpy()`` does not. NIfTI affines, and so regbench's ``Image``, map voxels to RAS instead; ITK's
readers flip the first two world axes, LPS = diag(-1, -1, 1) RAS, and ``ItkGeometry.from_image`` does the
same. A 2D image lies in the plane of the first two world axes (ITK's 2D reader keeps that block of the
affine), which its axes must not leave.

A registration tool returns the transform T that resamples the moving image onto the fixed one: it maps a
point p of the fixed image's space to T(p) in the moving image's space, and tools export it as a displacement
field d(p) = T(p) - p at the fixed voxel centres, vector components in LPS mm (ANTs' composed warp field,
elastix's transformix deformation field; any composite transform can be sampled there the same way). The
Learn2Reg displacement of fixed voxel x then points at the moving voxel that T reaches:

    u(x) = G_m^{-1}(G_f(x) + d(G_f(x))) - x,

with G the voxel-to-LPS map of each image. Fixed and moving may differ in shape, spacing, origin and
direction; the field is exact wherever the tool's is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.image import Image, Shape

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True, eq=False)
class ItkGeometry:
    """Where an image lies in ITK's terms (what ``SetOrigin``, ``SetSpacing`` and ``SetDirection`` take).

    Attributes:
        shape: voxels along each array axis (ITK's size, in the same order).
        origin: (ndim,) LPS mm of voxel 0.
        spacing: (ndim,) mm between voxel centres along each axis.
        direction: (ndim, ndim) direction cosines, column c the LPS unit vector of array axis c.
    """

    shape: Shape
    origin: np.ndarray
    spacing: np.ndarray
    direction: np.ndarray

    @classmethod
    def from_image(cls, image: Image) -> ItkGeometry:
        """The geometry ITK's NIfTI reader gives ``image``'s affine: the voxel-to-RAS map flipped to LPS."""
        ndim = image.ndim
        lps = LPS_FROM_RAS @ image.affine[:3]
        if ndim == 2 and not (np.allclose(lps[2, :2], 0) and np.allclose(lps[:2, 2], 0)):
            raise RegbenchError(f"ItkGeometry.from_image(): a 2D image must lie in the first two world axes, "
                                f"got affine {image.affine.tolist()}")
        linear = lps[:ndim, :ndim]
        spacing = np.linalg.norm(linear, axis=0)
        if not np.all(spacing > 0):
            raise RegbenchError(f"ItkGeometry.from_image(): the affine is singular: {image.affine.tolist()}")
        direction = linear / spacing
        if not np.allclose(direction.T @ direction, np.eye(ndim), atol=1e-4):
            raise RegbenchError("ItkGeometry.from_image(): ITK needs orthogonal voxel axes, but the affine shears "
                                f"them: {image.affine.tolist()}")
        return cls(image.shape, lps[:ndim, 3].copy(), spacing, direction)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def matrix(self) -> np.ndarray:
        """(ndim, ndim) D diag(s): LPS mm per voxel step along each array axis."""
        return self.direction * self.spacing

    def index_to_physical(self, index: np.ndarray) -> np.ndarray:
        """LPS mm of voxel coordinates ``index`` (..., ndim) (array order, fractional allowed)."""
        return np.asarray(index, dtype=np.float64) @ self.matrix.T + self.origin

    def physical_to_index(self, points: np.ndarray) -> np.ndarray:
        """Voxel coordinates (..., ndim) of LPS points ``points`` (..., ndim): the inverse of ``index_to_physical``."""
        return (np.asarray(points, dtype=np.float64) - self.origin) @ np.linalg.inv(self.matrix).T

    def grid(self) -> np.ndarray:
        """(*shape, ndim) LPS mm of every voxel centre."""
        return self.index_to_physical(_voxel_indices(self.shape))


def _voxel_indices(shape: Shape) -> np.ndarray:
    """(*shape, ndim) float64 array order index of every voxel."""
    return np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"), axis=-1)


def disp_from_physical_field(field_mm: np.ndarray, fixed: Image, moving: Image) -> Displacement:
    """The Learn2Reg displacement of an ITK displacement field (see the module docstring).

    Args:
        field_mm: (*fixed.shape, ndim) d(p) = T(p) - p at each fixed voxel centre, array (ITK index) order,
            vector components in LPS mm (x, y[, z]), as ITK-based tools write them.
        fixed: the image the field lives on (its affine gives G_f).
        moving: the image T maps into (its affine gives G_m).

    Returns:
        Voxels of the fixed grid sampling the moving grid, float32, channels last.
    """
    expected = (*fixed.shape, fixed.ndim)
    if field_mm.shape != expected:
        raise RegbenchError(f"disp_from_physical_field(): expected a field of shape {expected} (on the fixed grid, "
                            f"array order, components last), got {field_mm.shape}")
    if moving.ndim != fixed.ndim:
        raise RegbenchError(f"disp_from_physical_field(): fixed image is {fixed.ndim}D, moving {moving.ndim}D")
    fixed_geometry, moving_geometry = ItkGeometry.from_image(fixed), ItkGeometry.from_image(moving)
    mapped = fixed_geometry.grid() + np.asarray(field_mm, dtype=np.float64)
    disp = moving_geometry.physical_to_index(mapped) - _voxel_indices(fixed.shape)
    if not np.isfinite(disp).all():
        raise RegbenchError("disp_from_physical_field(): the tool's field contains NaN or inf values")
    return Displacement(disp.astype(np.float32))


def itk_error_reason(text: str) -> str:
    """The one line that says why an ITK-based tool failed: the last ITK exception's description (without the
    object's address), else the last non-empty line of ``text`` (the tool's log or its stderr)."""
    descriptions = re.findall(r"^\s*Description:\s*(.+?)\s*$", text, flags=re.MULTILINE)
    if descriptions:
        reason = re.sub(r"^ITK ERROR:\s*", "", descriptions[-1])
        return re.sub(r"\s*\(0x[0-9a-fA-F]+\)", "", reason)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
