"""Displacement fields in the Learn2Reg convention.

A displacement ``u`` lives on the fixed image's grid, in voxel units, channels last (``(*spatial, ndim)``,
channel c moving along array axis c). The moving image is sampled at ``x + u(x)`` for every fixed voxel x,
so ``warped(x) = moving(x + u(x))``. This is the layout of the official submission files.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np

from regbench.image import Shape

if TYPE_CHECKING:  # torch is imported where a field is converted: reading and scoring fields need none
    import torch


@dataclass(frozen=True, eq=False)
class Displacement:
    """A dense displacement, optionally with the uncertainty a probabilistic method reports.

    Attributes:
        data: (*spatial, ndim) float array, voxels of the fixed grid.
        std: optional per-voxel, per-component standard deviation, same shape as ``data``.
        samples: optional posterior samples, shape (N, *spatial, ndim).
    """

    data: np.ndarray
    std: np.ndarray | None = None
    samples: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_disp_array(self.data, where="Displacement()")
        if self.std is not None and self.std.shape != self.data.shape:
            raise ValueError(f"Displacement(): std shape {self.std.shape} differs from data shape {self.data.shape}")
        if self.samples is not None and self.samples.shape[1:] != self.data.shape:
            raise ValueError(
                f"Displacement(): samples must have shape (N, *{self.data.shape}), got {self.samples.shape}"
            )

    @property
    def ndim(self) -> int:
        return self.data.shape[-1]

    @property
    def spatial_shape(self) -> Shape:
        return tuple(self.data.shape[:-1])

    @classmethod
    def zeros(cls, spatial_shape: Shape) -> Displacement:
        return cls(np.zeros((*spatial_shape, len(spatial_shape)), dtype=np.float32))

    @classmethod
    def from_torch(cls, disp: torch.Tensor) -> Displacement:
        """From the torch layout (1, ndim, *spatial) that the spatial operations use."""
        if disp.ndim < 4 or disp.shape[0] != 1:
            raise ValueError(f"Displacement.from_torch(): expected (1, ndim, *spatial), got {tuple(disp.shape)}")
        return cls(np.moveaxis(disp[0].detach().cpu().numpy(), 0, -1).astype(np.float32))

    def to_torch(self, dtype: torch.dtype | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
        """To the torch layout (1, ndim, *spatial), float32 unless ``dtype`` says otherwise."""
        import torch

        return torch.as_tensor(np.moveaxis(self.data, -1, 0).copy(), dtype=dtype or torch.float32, device=device)[None]


def check_disp_array(data: np.ndarray, *, where: str, spatial_shape: Shape | None = None) -> None:
    """Raise ValueError unless ``data`` is a finite (*spatial, ndim) field (of the given spatial shape)."""
    spatial_ndim = data.ndim - 1
    if spatial_ndim not in (2, 3) or data.shape[-1] != spatial_ndim:
        raise ValueError(
            f"{where}: expected a channels-last field (H, W, 2) or (H, W, D, 3) (Learn2Reg layout), got {data.shape}"
        )
    if spatial_shape is not None and tuple(data.shape[:-1]) != tuple(spatial_shape):
        raise ValueError(f"{where}: expected shape {(*spatial_shape, len(spatial_shape))}, got {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError(f"{where}: field contains NaN or inf values")
