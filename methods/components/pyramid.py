"""Multi-resolution pyramids of images and displacement fields.

Grids follow ``regbench.spatial``'s align_corners=True convention: the first and last voxel centres of every
level sit at the same physical points, so a level of m voxels along an axis of n has spacing (n - 1) / (m - 1)
times the original. A displacement measured in voxels therefore changes its values by (m - 1) / (n - 1) when
its grid changes from n to m voxels, which ``resize_disp`` does; its physical meaning stays the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from regbench.errors import RegbenchError
from regbench.image import Shape
from regbench.methods.components.filters import gaussian_blur

MIN_LEVEL_SIZE = 8
"""No level is coarser than this many voxels a side (or the image itself): a smaller grid leaves a similarity
measure too little structure to work with."""


def level_shape(shape: Shape, factor: int) -> Shape:
    """The grid of a pyramid level ``factor`` times coarser: (n - 1) // factor + 1 voxels a side (64 -> 32 -> 16)."""
    if factor < 1:
        raise ValueError(f"level_shape(): factor must be a positive integer, got {factor}")
    return tuple(max((n - 1) // factor + 1, min(n, MIN_LEVEL_SIZE)) for n in shape)


def _interpolate(x: torch.Tensor, shape: Shape) -> torch.Tensor:
    mode = "bilinear" if x.ndim == 4 else "trilinear"
    return F.interpolate(x, size=tuple(shape), mode=mode, align_corners=True)


def resize_image(image: torch.Tensor, shape: Shape) -> torch.Tensor:
    """Linear resampling of (B, C, *spatial) onto ``shape``, no anti-aliasing (see ``downsample_image``)."""
    return _interpolate(image, shape)


def downsample_image(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Blur with sigma = factor / 3 voxels (scikit-image's ``pyramid_reduce`` choice, 2 * factor / 6) to avoid
    aliasing, then resample onto ``level_shape``. Factor 1 returns the image unchanged."""
    if factor == 1:
        return image
    return resize_image(gaussian_blur(image, factor / 3), level_shape(tuple(image.shape[2:]), factor))


def image_pyramid(image: torch.Tensor, factors: Sequence[int]) -> list[torch.Tensor]:
    """``downsample_image`` at each factor, in the order given (coarse to fine is e.g. (4, 2, 1))."""
    return [downsample_image(image, f) for f in factors]


def resize_disp(disp: torch.Tensor, shape: Shape) -> torch.Tensor:
    """Resample a displacement (B, ndim, *spatial) onto ``shape`` and rescale its voxel values to the new grid.

    Component i is multiplied by (m_i - 1) / (n_i - 1), so a constant field keeps its physical size and an
    affine field stays exactly affine (linear interpolation of a linear function is exact).
    """
    old = disp.shape[2:]
    if len(shape) != len(old) or disp.shape[1] != len(old):
        raise ValueError(f"resize_disp(): cannot resize a field {tuple(disp.shape)} to {tuple(shape)}")
    scale = torch.tensor([(m - 1) / max(n - 1, 1) for n, m in zip(old, shape)], dtype=disp.dtype,
                         device=disp.device)
    return _interpolate(disp, shape) * scale.view(1, -1, *([1] * len(shape)))


def check_pyramid(params: object, factors: Sequence[int], iterations: Sequence[int]) -> None:
    """Raise a RegbenchError naming ``params``' class unless there is one iteration count per level and the
    factors are positive and coarse to fine; for methods' hyperparameter checks."""
    owner = type(params).__name__
    if not factors or len(factors) != len(iterations):
        raise RegbenchError(f"{owner}: need one iteration count per pyramid factor, got factors {tuple(factors)} "
                            f"and iterations {tuple(iterations)}")
    if min(factors) < 1 or list(factors) != sorted(factors, reverse=True):
        raise RegbenchError(f"{owner}: factors must be positive and coarse to fine (e.g. (4, 2, 1)), "
                            f"got {tuple(factors)}")
