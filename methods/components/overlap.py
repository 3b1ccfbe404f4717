"""Label overlap as a differentiable loss, for methods that train with segmentations (semi-supervised).

Label maps become one-hot channel stacks, which warp like images (linearly, so a warped one-hot map holds
soft memberships in [0, 1]); the soft Dice of such stacks is differentiable in the displacement.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def one_hot(labels: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """(B, 1, *spatial) integer labels -> (B, len(classes), *spatial) float masks, channel k for ``classes[k]``.

    Only the listed labels get a channel (background 0 is usually left out, as the Dice metric leaves it out).
    """
    if labels.ndim < 3 or labels.shape[1] != 1:
        raise ValueError(f"one_hot(): expected (B, 1, *spatial) labels, got {tuple(labels.shape)}")
    values = torch.as_tensor(list(classes), dtype=labels.dtype, device=labels.device)
    return (labels == values.view(1, -1, *([1] * (labels.ndim - 2)))).float()


def soft_dice_loss(fixed: torch.Tensor, warped: torch.Tensor, *, eps: float = 1e-5) -> torch.Tensor:
    """1 - mean soft Dice over the channels of two (B, K, *spatial) membership stacks.

    Per channel, 2 sum(f w) / (sum f + sum w), as VoxelMorph's semi-supervised loss (Balakrishnan et al. 2019,
    doi:10.1109/TMI.2019.2897538). ``eps`` in numerator and denominator makes a label absent from both count
    as a perfect match instead of 0/0.
    """
    if fixed.shape != warped.shape:
        raise ValueError(f"soft_dice_loss(): fixed {tuple(fixed.shape)} and warped {tuple(warped.shape)} "
                         "differ in shape")
    dims = tuple(range(2, fixed.ndim))
    overlap = (fixed * warped).sum(dims)
    total = fixed.sum(dims) + warped.sum(dims)
    return 1.0 - ((2 * overlap + eps) / (total + eps)).mean()
