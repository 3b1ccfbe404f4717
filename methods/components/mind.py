"""MIND-SSC: modality independent neighbourhood descriptors with a self-similarity context.

Heinrich et al., "Towards realtime multimodal fusion for image-guided interventions using self-similarities",
MICCAI 2013, doi:10.1007/978-3-642-40811-3_24 (the SSC variant of MIND, MedIA 2012, doi:10.1016/j.media.2012.05.008).
Each voxel is described by how similar the patches around its neighbours are to each other, which depends on
local structure and not on the intensity mapping, so features of an MR and a CT image can be compared with SSD.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from regbench.methods.components.filters import box_filter


def _shifted(padded: torch.Tensor, offset: tuple[int, ...], pad: int) -> torch.Tensor:
    """``image(x + offset)`` from an image padded by ``pad`` on every side."""
    index = [slice(None), slice(None)]
    for step, n in zip(offset, padded.shape[2:]):
        index.append(slice(pad + step, n - pad + step))
    return padded[tuple(index)]


def ssc_offset_pairs(ndim: int, dilation: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The neighbour pairs compared by MIND-SSC: the 2*ndim axis neighbours at ``dilation`` voxels, taken in
    pairs that are orthogonal to each other (sqrt(2) * dilation apart): 12 pairs in 3D, 4 in 2D."""
    neighbours = []
    for axis in range(ndim):
        for sign in (1, -1):
            offset = [0] * ndim
            offset[axis] = sign * dilation
            neighbours.append(tuple(offset))
    return [(a, b) for a, b in itertools.combinations(neighbours, 2)
            if sum(p * q for p, q in zip(a, b)) == 0]


def mind_ssc(image: torch.Tensor, *, radius: int = 1, dilation: int = 2) -> torch.Tensor:
    """MIND-SSC features of a (B, 1, *spatial) image: (B, P, *spatial) with P = 12 in 3D and 4 in 2D.

    Args:
        image: single-channel image; its intensity scale does not matter.
        radius: half-width r of the cubic patch (2r + 1 voxels) over which squared differences are averaged.
        dilation: distance in voxels of the neighbours whose patches are compared (the "delta" of the paper).

    Following Heinrich's reference code, patch distances are shifted so the smallest per voxel is 0, divided by
    their mean over the P channels (the local variance estimate V, clamped to [0.001, 1000] times its global
    mean to avoid division by zero in flat regions) and mapped through exp(-D / V). Values lie in (0, 1].
    Borders repeat the edge voxel.
    """
    if image.shape[1] != 1 or image.ndim not in (4, 5):
        raise ValueError(f"mind_ssc(): expected a (B, 1, *spatial) image with 2 or 3 axes, got {tuple(image.shape)}")
    if radius < 0 or dilation < 1:
        raise ValueError(f"mind_ssc(): need radius >= 0 and dilation >= 1, got {radius} and {dilation}")
    ndim = image.ndim - 2
    padded = F.pad(image, [dilation] * (2 * ndim), mode="replicate")
    distances = torch.cat([
        box_filter((_shifted(padded, a, dilation) - _shifted(padded, b, dilation)) ** 2, 2 * radius + 1)
        for a, b in ssc_offset_pairs(ndim, dilation)
    ], dim=1)
    distances = distances - distances.min(dim=1, keepdim=True).values
    variance = distances.mean(dim=1, keepdim=True)
    scale = variance.mean().detach()
    tiny = torch.finfo(image.dtype).tiny
    variance = variance.clamp(min=scale * 1e-3 + tiny, max=scale * 1e3 + tiny)
    return torch.exp(-distances / variance)
