"""Image similarity losses: MSE, NCC, local NCC, mutual information, NGF and MIND.

Every function takes ``fixed`` and ``warped`` of the same shape (B, C, *spatial), 2D or 3D, and returns a
scalar to minimise, averaged over the batch. Intensity-based losses (MSE, MI) expect images normalised to
[0, 1] (``normalise_intensity``); NCC, LNCC, NGF and MIND do not care about the intensity scale.
Which to use: MSE, (L)NCC for images of one modality; MI, NGF, MIND when intensities do not correspond.
"""

from __future__ import annotations

import torch
from torch import nn

from regbench.methods.components.filters import box_filter
from regbench.methods.components.mind import mind_ssc


def _check(fixed: torch.Tensor, warped: torch.Tensor, where: str) -> None:
    if fixed.shape != warped.shape:
        raise ValueError(f"{where}: fixed {tuple(fixed.shape)} and warped {tuple(warped.shape)} differ in shape")
    if fixed.ndim not in (4, 5):
        raise ValueError(f"{where}: expected (B, C, *spatial) with 2 or 3 spatial axes, got {tuple(fixed.shape)}")


def mse_loss(fixed: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
    """Mean squared intensity difference (SSD divided by the number of voxels and channels)."""
    _check(fixed, warped, "mse_loss()")
    return (fixed - warped).square().mean()


def ncc_loss(fixed: torch.Tensor, warped: torch.Tensor, *, eps: float = 1e-10) -> torch.Tensor:
    """1 - global normalised cross-correlation per image and channel: 0 for an exact linear intensity relation
    of positive slope, 2 for a negative one. The denominator is at least ``eps``, so a constant image scores
    1 (no correlation) instead of NaN."""
    _check(fixed, warped, "ncc_loss()")
    f = fixed.flatten(2) - fixed.flatten(2).mean(-1, keepdim=True)
    w = warped.flatten(2) - warped.flatten(2).mean(-1, keepdim=True)
    ncc = (f * w).mean(-1) / (f.square().mean(-1) * w.square().mean(-1)).sqrt().clamp_min(eps)
    return 1.0 - ncc.mean()


def lncc_loss(fixed: torch.Tensor, warped: torch.Tensor, *, window: int = 5, eps: float = 1e-5) -> torch.Tensor:
    """1 - mean squared local normalised cross-correlation over ``window``-wide (odd, voxels) cubic windows.

    The squared correlation (VoxelMorph's convention, Balakrishnan et al. 2019, doi:10.1109/TMI.2019.2897538)
    rewards any local linear intensity relation. With ``eps`` added to numerator and denominator, flat windows
    score 1 when both images are flat there, so identical images give exactly 0, the minimum. Local statistics
    near the border come from the voxels inside the image only.
    """
    _check(fixed, warped, "lncc_loss()")
    mean_f, mean_w = box_filter(fixed, window), box_filter(warped, window)
    var_f = (box_filter(fixed * fixed, window) - mean_f.square()).clamp_min(0.0)
    var_w = (box_filter(warped * warped, window) - mean_w.square()).clamp_min(0.0)
    cov = box_filter(fixed * warped, window) - mean_f * mean_w
    cc = (cov.square() + eps) / (var_f * var_w + eps)
    return 1.0 - cc.mean()


def _parzen_weights(values: torch.Tensor, centres: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, N) intensities -> (B, N, K) Gaussian bin memberships, each row summing to 1."""
    weights = torch.exp(-0.5 * ((values.unsqueeze(-1) - centres) / sigma).square())
    return weights / weights.sum(-1, keepdim=True)


def mi_loss(fixed: torch.Tensor, warped: torch.Tensor, *, bins: int = 32, sigma_ratio: float = 0.5) -> torch.Tensor:
    """Negative global mutual information (nats) from a Parzen-window joint histogram.

    Mattes et al. 2003 (doi:10.1109/TMI.2002.803111) in its common differentiable form: each voxel adds a
    Gaussian of width ``sigma_ratio`` bin spacings to ``bins`` bins evenly spread over [0, 1] (intensities
    outside are clipped), so the histogram, and MI, are smooth in the displacement. Any one-to-one intensity
    mapping keeps MI, which makes it the classic multi-modal measure. Single-channel images.
    """
    _check(fixed, warped, "mi_loss()")
    if fixed.shape[1] != 1:
        raise ValueError(f"mi_loss(): expected single-channel images, got {fixed.shape[1]} channels")
    if bins < 2 or sigma_ratio <= 0:
        raise ValueError(f"mi_loss(): need bins >= 2 and sigma_ratio > 0, got {bins} and {sigma_ratio}")
    centres = torch.linspace(0.0, 1.0, bins, dtype=fixed.dtype, device=fixed.device)
    sigma = sigma_ratio / (bins - 1)
    w_f = _parzen_weights(fixed.flatten(1).clamp(0, 1), centres, sigma)
    w_w = _parzen_weights(warped.flatten(1).clamp(0, 1), centres, sigma)
    joint = torch.bmm(w_f.transpose(1, 2), w_w) / w_f.shape[1]
    marginals = joint.sum(2, keepdim=True) * joint.sum(1, keepdim=True)
    tiny = torch.finfo(joint.dtype).tiny
    mi = (joint * (torch.log(joint + tiny) - torch.log(marginals + tiny))).sum((1, 2))
    return -mi.mean()


def _normalised_gradient(image: torch.Tensor, eps: float) -> torch.Tensor:
    """(B, C, *spatial) -> (B, C, ndim, *spatial) central-difference gradient divided by sqrt(|grad|^2 + eps^2)."""
    grad = torch.stack(torch.gradient(image, dim=tuple(range(2, image.ndim))), dim=2)
    return grad / (grad.square().sum(2, keepdim=True) + eps**2).sqrt()


def ngf_loss(fixed: torch.Tensor, warped: torch.Tensor, *, eps: float = 0.01) -> torch.Tensor:
    """Normalised gradient fields: 1 - mean of the squared cosine between the images' gradients.

    Haber and Modersitzki 2006 (doi:10.1007/11866763_89). Edges matter, their sign and strength do not, so an
    image and its contrast-inverted copy score the same. ``eps`` (intensity per voxel) is the edge strength
    below which a gradient counts as noise; flat regions add nothing to the alignment.
    """
    _check(fixed, warped, "ngf_loss()")
    cos = (_normalised_gradient(fixed, eps) * _normalised_gradient(warped, eps)).sum(2)
    return 1.0 - cos.square().mean()


def mind_loss(fixed: torch.Tensor, warped: torch.Tensor, *, radius: int = 1, dilation: int = 2) -> torch.Tensor:
    """Mean squared difference of the MIND-SSC descriptors of two single-channel images (see ``mind_ssc``).

    Optimisers that warp one image many times should compute the moving descriptors once and warp those
    instead, comparing with ``mse_loss``, as Heinrich's reference code does.
    """
    _check(fixed, warped, "mind_loss()")
    return mse_loss(mind_ssc(fixed, radius=radius, dilation=dilation),
                    mind_ssc(warped, radius=radius, dilation=dilation))


class MSE(nn.Module):
    """Module form of ``mse_loss``."""

    def forward(self, fixed: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
        return mse_loss(fixed, warped)


class NCC(nn.Module):
    """Module form of ``ncc_loss`` (global)."""

    def __init__(self, *, eps: float = 1e-10) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, fixed: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
        return ncc_loss(fixed, warped, eps=self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


class LNCC(nn.Module):
    """Module form of ``lncc_loss``."""

    def __init__(self, *, window: int = 5, eps: float = 1e-5) -> None:
        super().__init__()
        self.window, self.eps = window, eps

    def forward(self, fixed: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
        return lncc_loss(fixed, warped, window=self.window, eps=self.eps)

    def extra_repr(self) -> str:
        return f"window={self.window}, eps={self.eps}"


class MI(nn.Module):
    """Module form of ``mi_loss``."""

    def __init__(self, *, bins: int = 32, sigma_ratio: float = 0.5) -> None:
        super().__init__()
        self.bins, self.sigma_ratio = bins, sigma_ratio

    def forward(self, fixed: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
        return mi_loss(fixed, warped, bins=self.bins, sigma_ratio=self.sigma_ratio)

    def extra_repr(self) -> str:
        return f"bins={self.bins}, sigma_ratio={self.sigma_ratio}"


class NGF(nn.Module):
    """Module form of ``ngf_loss``."""

    def __init__(self, *, eps: float = 0.01) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, fixed: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
        return ngf_loss(fixed, warped, eps=self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


class MIND(nn.Module):
    """Module form of ``mind_loss``."""

    def __init__(self, *, radius: int = 1, dilation: int = 2) -> None:
        super().__init__()
        self.radius, self.dilation = radius, dilation

    def forward(self, fixed: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
        return mind_loss(fixed, warped, radius=self.radius, dilation=self.dilation)

    def extra_repr(self) -> str:
        return f"radius={self.radius}, dilation={self.dilation}"
