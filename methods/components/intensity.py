"""Intensity normalisation before a similarity measure sees an image."""

from __future__ import annotations

import torch


def _percentile(flat: torch.Tensor, q: float) -> torch.Tensor:
    """Nearest-rank percentile along the last axis (``kthvalue`` has no size limit, unlike ``torch.quantile``)."""
    k = 1 + round(q / 100 * (flat.shape[-1] - 1))
    return flat.kthvalue(k, dim=-1).values


def normalise_intensity(image: torch.Tensor, *, lower: float = 0.5, upper: float = 99.5) -> torch.Tensor:
    """Map the ``lower``..``upper`` percentile range of each image of a (B, C, *spatial) batch to [0, 1].

    Percentiles rather than min/max so that a few hot voxels (metal in CT, flow artefacts in MR) do not squash
    the tissue contrast; values outside are clipped. [0, 1] so that intensity-based losses (MSE, MI bins) mean
    the same on every task. A constant image maps to zeros.
    """
    if not 0 <= lower < upper <= 100:
        raise ValueError(f"normalise_intensity(): need 0 <= lower < upper <= 100, got {lower}, {upper}")
    flat = image.reshape(image.shape[0], -1)
    view = (-1, *([1] * (image.ndim - 1)))
    low = _percentile(flat, lower).view(view)
    high = _percentile(flat, upper).view(view)
    return ((image - low) / (high - low).clamp_min(torch.finfo(image.dtype).tiny)).clamp(0.0, 1.0)
