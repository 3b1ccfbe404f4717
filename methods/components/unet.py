"""A small configurable U-Net for 2D and 3D registration networks (VoxelMorph's layout by default).

Ronneberger et al. 2015 (doi:10.1007/978-3-319-24574-4_28); the defaults follow VoxelMorph's
(Balakrishnan et al. 2019, doi:10.1109/TMI.2019.2897538): 3x3(x3) convolutions with LeakyReLU(0.2), max-pool
down, upsample, concatenate the skip, one convolution per level. Inputs of any size work: each upsampled
map is resized to its skip connection's grid, so odd sizes need no padding or cropping by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _conv(ndim: int, in_channels: int, out_channels: int) -> nn.Module:
    return (nn.Conv2d if ndim == 2 else nn.Conv3d)(in_channels, out_channels, kernel_size=3, padding=1)


class ConvBlock(nn.Sequential):
    """3x3(x3) convolution, optional instance normalisation, LeakyReLU."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int, *, negative_slope: float = 0.2,
                 instance_norm: bool = False) -> None:
        layers = [_conv(ndim, in_channels, out_channels)]
        if instance_norm:
            layers.append((nn.InstanceNorm2d if ndim == 2 else nn.InstanceNorm3d)(out_channels, affine=True))
        layers.append(nn.LeakyReLU(negative_slope))
        super().__init__(*layers)


class UNet(nn.Module):
    """(B, in_channels, *spatial) -> (B, out_channels, *spatial).

    Args:
        ndim: 2 or 3 spatial axes.
        in_channels: e.g. 2 for a (moving, fixed) pair.
        out_channels: e.g. ndim for a displacement or velocity field.
        encoder: channels per level, finest first; there are len(encoder) - 1 max-pool steps.
        decoder: channels after each upsampling step, coarsest first; len(decoder) == len(encoder) - 1.
        final: channels of extra full-resolution convolutions after the decoder (VoxelMorph's "16, 16").
        negative_slope: of the LeakyReLU activations.
        instance_norm: normalise after every convolution (off in VoxelMorph).

    The last layer is a plain convolution (``self.head``) with no activation; methods that predict a field
    usually initialise it near zero so training starts from the identity.
    """

    def __init__(self, ndim: int, in_channels: int, out_channels: int, *,
                 encoder: Sequence[int] = (16, 32, 32, 32), decoder: Sequence[int] = (32, 32, 32),
                 final: Sequence[int] = (), negative_slope: float = 0.2, instance_norm: bool = False) -> None:
        super().__init__()
        if ndim not in (2, 3):
            raise ValueError(f"UNet(): ndim must be 2 or 3, got {ndim}")
        if not encoder or len(decoder) != len(encoder) - 1:
            raise ValueError(f"UNet(): need len(decoder) == len(encoder) - 1 (one per upsampling step), "
                             f"got encoder {tuple(encoder)} and decoder {tuple(decoder)}")
        self.ndim = ndim

        def block(c_in: int, c_out: int) -> ConvBlock:
            return ConvBlock(ndim, c_in, c_out, negative_slope=negative_slope, instance_norm=instance_norm)

        self.encoder = nn.ModuleList()
        channels = in_channels
        for c in encoder:
            self.encoder.append(block(channels, c))
            channels = c
        self.decoder = nn.ModuleList()
        skips = list(encoder[:-1])[::-1]
        for c, skip in zip(decoder, skips):
            self.decoder.append(block(channels + skip, c))
            channels = c
        self.final = nn.Sequential(*[block(c_in, c_out) for c_in, c_out in zip([channels, *final], final)])
        self.head = _conv(ndim, final[-1] if final else channels, out_channels)
        self.pool = nn.MaxPool2d(2) if ndim == 2 else nn.MaxPool3d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.ndim + 2:
            raise ValueError(f"UNet.forward(): expected (B, C, *spatial) with {self.ndim} spatial axes, "
                             f"got {tuple(x.shape)}")
        skips = []
        for level, block in enumerate(self.encoder):
            if level > 0:
                skips.append(x)
                x = self.pool(x)
            x = block(x)
        mode = "bilinear" if self.ndim == 2 else "trilinear"
        for block in self.decoder:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[2:], mode=mode, align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(self.final(x))
