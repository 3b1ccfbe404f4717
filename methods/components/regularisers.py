"""Regularisers of a displacement field (B, ndim, *spatial) in voxel units: diffusion, bending, folding.

All derivatives are taken per voxel of the field's own grid (``regbench.spatial.spatial_gradient``: central
differences inside, one-sided at the border), so the first-order terms are dimensionless and a weight tuned at
one pyramid level means the same at the next. Anisotropic voxel spacing is not taken into account: Learn2Reg
displacements are in voxels and so are these penalties. ``reduction="none"`` returns the per-voxel map
(B, *spatial) instead of the mean.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from regbench.spatial import jacobian_det, spatial_gradient

Reduction = Literal["mean", "none"]


def _reduce(per_voxel: torch.Tensor, reduction: Reduction, where: str) -> torch.Tensor:
    if reduction == "mean":
        return per_voxel.mean()
    if reduction == "none":
        return per_voxel
    raise ValueError(f"{where}: reduction must be 'mean' or 'none', got {reduction!r}")


def diffusion_loss(disp: torch.Tensor, *, weight: torch.Tensor | None = None,
                   reduction: Reduction = "mean") -> torch.Tensor:
    """Diffusion (membrane) energy: sum over i, j of (d u_i / d x_j)^2 at each voxel, averaged over voxels.

    A constant field costs 0 and the ramp u = A x costs the squared Frobenius norm of A everywhere.
    ``weight`` (B, 1, *spatial) scales the energy per voxel, for spatially varying regularisation.
    """
    energy = spatial_gradient(disp).square().sum((1, 2))
    if weight is not None:
        energy = energy * weight[:, 0]
    return _reduce(energy, reduction, "diffusion_loss()")


def bending_loss(disp: torch.Tensor, *, reduction: Reduction = "mean") -> torch.Tensor:
    """Bending energy (thin-plate): sum over i, j, k of (d^2 u_i / d x_j d x_k)^2, averaged over voxels.

    Zero for every affine field, so it penalises curvature, not stretching (Rueckert et al. 1999,
    doi:10.1109/42.796284). Mixed derivatives appear twice (jk and kj), as in the usual xx + yy + 2 xy form.
    """
    ndim = disp.shape[1]
    first = spatial_gradient(disp).flatten(1, 2)  # (B, ndim * ndim, *spatial)
    second = torch.stack(torch.gradient(first, dim=tuple(range(2, 2 + ndim))), dim=2)
    return _reduce(second.square().sum((1, 2)), reduction, "bending_loss()")


def jacobian_loss(disp: torch.Tensor, *, margin: float = 0.0, reduction: Reduction = "mean") -> torch.Tensor:
    """Folding penalty: relu(margin - det J) per voxel, averaged. Zero wherever the map keeps orientation with
    det J >= ``margin`` and growing linearly into folds (det J <= 0), so it leaves plausible regions alone
    (Kuang and Schmah 2019, doi:10.1007/978-3-030-32692-0_74)."""
    return _reduce(torch.relu(margin - jacobian_det(disp)), reduction, "jacobian_loss()")


class Diffusion(nn.Module):
    """Module form of ``diffusion_loss``."""

    def forward(self, disp: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return diffusion_loss(disp, weight=weight)


class Bending(nn.Module):
    """Module form of ``bending_loss``."""

    def forward(self, disp: torch.Tensor) -> torch.Tensor:
        return bending_loss(disp)


class JacobianPenalty(nn.Module):
    """Module form of ``jacobian_loss``."""

    def __init__(self, *, margin: float = 0.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, disp: torch.Tensor) -> torch.Tensor:
        return jacobian_loss(disp, margin=self.margin)

    def extra_repr(self) -> str:
        return f"margin={self.margin}"
