"""Spatial operations every method and metric shares, in torch, 2D and 3D alike.

Layout: images are (B, C, *spatial) and displacements (B, ndim, *spatial), channel c moving along spatial
axis c, in voxel units on the fixed grid (the Learn2Reg convention: ``warped(x) = moving(x + u(x))``).
Converting to ``grid_sample``'s normalised (x, y, z)-reversed coordinates happens here and nowhere else.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Padding = Literal["zeros", "border", "reflection"]


def identity_grid(spatial_shape: tuple[int, ...], *, dtype: torch.dtype = torch.float32,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """Voxel coordinates of every grid point, shape (1, ndim, *spatial)."""
    axes = [torch.arange(n, dtype=dtype, device=device) for n in spatial_shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))[None]


def _check(image: torch.Tensor, disp: torch.Tensor) -> int:
    ndim = disp.shape[1]
    if ndim not in (2, 3) or disp.ndim != ndim + 2:
        raise ValueError(f"warp(): disp must be (B, ndim, *spatial) with ndim 2 or 3, got {tuple(disp.shape)}")
    if image.ndim != disp.ndim:
        raise ValueError(f"warp(): image must be (B, C, *spatial) with {ndim} spatial axes, got {tuple(image.shape)}")
    return ndim


def sampling_grid(disp: torch.Tensor, moving_shape: tuple[int, ...]) -> torch.Tensor:
    """``grid_sample`` grid for sampling a moving image of ``moving_shape`` at x + disp(x).

    Voxel coordinates are normalised to [-1, 1] with align_corners=True (voxel centres at the ends), and the
    component order is reversed because ``grid_sample`` expects (x, y, z) = (last axis, ..., first axis).
    """
    ndim = disp.shape[1]
    coords = identity_grid(tuple(disp.shape[2:]), dtype=disp.dtype, device=disp.device) + disp
    scale = torch.tensor([2.0 / max(n - 1, 1) for n in moving_shape], dtype=disp.dtype, device=disp.device)
    coords = coords * scale.view(1, ndim, *([1] * ndim)) - 1.0
    return coords.flip(1).movedim(1, -1)


def warp(moving: torch.Tensor, disp: torch.Tensor, *, mode: Literal["bilinear", "nearest"] = "bilinear",
         padding: Padding = "zeros") -> torch.Tensor:
    """Sample ``moving`` (B, C, *moving_spatial) at x + disp(x) for every x of the fixed grid of ``disp``.

    ``bilinear`` is (tri)linear in 3D. Outside the moving image, ``zeros`` gives 0 (as scipy's
    ``map_coordinates(mode='constant')`` in the official evaluation) and ``border`` repeats the edge.
    """
    _check(moving, disp)
    grid = sampling_grid(disp, tuple(moving.shape[2:]))
    return F.grid_sample(moving, grid.to(moving.dtype), mode=mode, padding_mode=padding, align_corners=True)


def warp_labels(labels: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """Warp an integer label map (B, 1, *spatial) with nearest neighbour: no new label values appear."""
    warped = warp(labels.to(disp.dtype), disp, mode="nearest", padding="zeros")
    return warped.round().to(labels.dtype)


def compose(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """The displacement of following ``first`` and then ``second``.

    With ``first`` on the fixed grid pointing into an intermediate image and ``second`` on that intermediate
    grid pointing into the moving image, the result is ``u(x) = first(x) + second(x + first(x))``:
    warping with it equals warping by ``second`` and then by ``first``, with one resampling instead of two.
    """
    return first + warp(second, first, padding="border")


def integrate_svf(velocity: torch.Tensor, *, steps: int = 7) -> torch.Tensor:
    """Exponentiate a stationary velocity field by scaling and squaring (Arsigny et al. 2006).

    The result is a diffeomorphic displacement as long as ``velocity / 2**steps`` is small (under about half a
    voxel); 7 steps suit velocities up to tens of voxels.
    """
    if steps < 0:
        raise ValueError(f"integrate_svf(): steps must be >= 0, got {steps}")
    disp = velocity / (2**steps)
    for _ in range(steps):
        disp = compose(disp, disp)
    return disp


def spatial_gradient(disp: torch.Tensor, *, boundary: Literal["one_sided", "zero"] = "one_sided") -> torch.Tensor:
    """Central-difference Jacobian of ``disp``: (B, ndim, ndim, *spatial), entry [i, j] = d u_i / d x_j (voxels).

    ``one_sided`` uses one-sided differences at the border; ``zero`` pads the field with zeros first, which is
    what the official SDlogJ does (``scipy.ndimage.correlate`` with [-0.5, 0, 0.5] and cval 0).
    """
    ndim = disp.shape[1]
    spatial_dims = tuple(range(2, 2 + ndim))
    if boundary == "one_sided":
        grads = torch.gradient(disp, dim=spatial_dims)
    elif boundary == "zero":
        padded = F.pad(disp, [1, 1] * ndim)
        grads = []
        for axis in range(ndim):
            dim = 2 + axis
            n = disp.shape[dim]
            upper = padded.narrow(dim, 2, n)
            lower = padded.narrow(dim, 0, n)
            crop = [slice(None), slice(None)] + [slice(1, -1) if a != axis else slice(None) for a in range(ndim)]
            grads.append(((upper - lower) / 2.0)[tuple(crop)])
    else:
        raise ValueError(f"spatial_gradient(): boundary must be 'one_sided' or 'zero', got {boundary!r}")
    return torch.stack(grads, dim=2)


def jacobian_det(disp: torch.Tensor, *, boundary: Literal["one_sided", "zero"] = "one_sided") -> torch.Tensor:
    """Determinant of the Jacobian of x -> x + disp(x), shape (B, *spatial). Values <= 0 mean folding."""
    grad = spatial_gradient(disp, boundary=boundary)
    ndim = disp.shape[1]
    eye = torch.eye(ndim, dtype=disp.dtype, device=disp.device).view(1, ndim, ndim, *([1] * ndim))
    jac = (grad + eye).movedim(1, -1).movedim(1, -1)  # (B, *spatial, ndim, ndim)
    return torch.linalg.det(jac)
