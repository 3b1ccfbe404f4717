"""Gradient ascent on the chain's parameters through a network that registers end to end, as AdvChain does.

A method opts in by implementing ``differentiable_forward(pair, moving)`` (the ``Differentiable`` protocol):
the displacement (1, ndim, *fixed grid) that ``register(pair)`` returns, computed with the moving image given
as a tensor (1, 1, *spatial) of its intensities, differentiable in that tensor. Steps that are optimisations
of their own (an affine pre-alignment, instance fine-tuning) may run on ``pair`` and be held constant; the
network's forward pass must carry the gradient. Each ascent step maximises a differentiable twin of the
search's error (``surrogate_error``); every iterate is then scored exactly with ``register``, so the
result is the same kind of number the black-box searches report.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from regbench import spatial
from regbench.advchain import AdvChain, perturb_pair
from regbench.displacement import Displacement
from regbench.method import Method
from regbench.methods.components.overlap import one_hot, soft_dice_loss
from regbench.metrics.displacement_error import evaluation_region
from regbench.pair import Pair
from regbench.robustness.scoring import Score, back_to_moving, fixed_labels

_NORM_EPS = 1e-12  # keeps the gradient of a length finite where it is zero


@runtime_checkable
class Differentiable(Protocol):
    """A method whose registration can be differentiated with respect to the moving image (module docstring)."""

    def differentiable_forward(self, pair: Pair, moving: torch.Tensor) -> torch.Tensor: ...


def _length_mm(difference: torch.Tensor, spacing: Sequence[float], dim: int) -> torch.Tensor:
    scale = torch.as_tensor(spacing, dtype=difference.dtype).view([-1 if d == dim else 1
                                                                   for d in range(difference.ndim)])
    return torch.sqrt(((difference * scale) ** 2).sum(dim) + _NORM_EPS)


def _field_at(field: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """A field (1, ndim, *grid) linearly interpolated at (N, ndim) voxel coordinates: (N, ndim)."""
    ndim = points.shape[1]
    arranged = points.T.reshape(1, ndim, -1, *([1] * (ndim - 1)))
    offset = spatial.identity_grid(tuple(arranged.shape[2:]), dtype=field.dtype)
    return spatial.warp(field, arranged - offset, padding="border").reshape(ndim, -1).T


def surrogate_error(pair: Pair, chain: AdvChain, disp: torch.Tensor, truth: Displacement | None, *,
                    labels: Sequence[int] | None = None) -> torch.Tensor:
    """A differentiable twin of ``scoring.score_perturbed``'s error for a registration ``disp`` (1, ndim,
    *fixed) of ``pair`` perturbed by ``chain``: the mean displacement error (mm) against ``truth``, else the mean
    keypoint TRE (linear instead of cubic interpolation), else the soft Dice loss of linearly warped one-hot
    labels."""
    composed = back_to_moving(disp, chain)
    spacing = pair.moving.image.spacing
    if truth is not None:
        region = evaluation_region(pair.fixed.image.shape, None if pair.fixed.mask is None else pair.fixed.mask.data,
                                   None if pair.fixed.labels is None else pair.fixed.labels.data)
        error = _length_mm(composed - truth.to_torch(chain.dtype), spacing, dim=1)[0]
        return error[torch.as_tensor(region)].mean()
    if pair.fixed.keypoints is not None and pair.moving.keypoints is not None:
        fixed = torch.as_tensor(pair.fixed.keypoints, dtype=chain.dtype)
        moved = fixed + _field_at(composed, fixed)
        return _length_mm(moved - torch.as_tensor(pair.moving.keypoints, dtype=chain.dtype), spacing, dim=1).mean()
    classes = fixed_labels(pair, labels)

    def stack(labels_data: np.ndarray) -> torch.Tensor:
        return one_hot(torch.as_tensor(labels_data.astype(np.int64))[None, None], classes).to(chain.dtype)

    warped = spatial.warp(stack(pair.moving.labels.data), composed, padding="zeros")
    return soft_dice_loss(stack(pair.fixed.labels.data), warped)


def gradient_search(method: Method, pair: Pair, truth: Displacement | None, start: AdvChain, start_score: Score,
                    objective: Callable[[AdvChain], Score], *, steps: int, lr: float,
                    labels: Sequence[int] | None = None) -> tuple[AdvChain, Score]:
    """``steps`` Adam ascent steps on ``surrogate_error`` from ``start`` (whose exact score is
    ``start_score``), each iterate scored exactly by ``objective`` (a ``search.ChainObjective``); returns the
    chain with the highest exact error and its score (``start`` itself if no step beat it)."""
    if not isinstance(method, Differentiable):
        raise TypeError(f"gradient_search(): method {method.name!r} has no differentiable_forward")
    chain = copy.deepcopy(start)
    best, best_score = copy.deepcopy(start), start_score
    parameters = list(chain.parameters())
    optimiser = torch.optim.Adam(parameters, lr=lr, maximize=True)
    clean = torch.as_tensor(np.asarray(pair.moving.image.data, dtype=np.float64))[None, None]
    for _ in range(steps):
        perturbed, _ = perturb_pair(pair, chain)
        moving = chain.apply(clean).to(device=method.device, dtype=method.dtype)
        disp = method.differentiable_forward(perturbed.blind(), moving).to(device="cpu", dtype=chain.dtype)
        error = surrogate_error(pair, chain, disp, truth, labels=labels)
        gradients = torch.autograd.grad(error, parameters, allow_unused=True)
        for parameter, gradient in zip(parameters, gradients):
            parameter.grad = torch.zeros_like(parameter) if gradient is None else gradient
        optimiser.step()
        score = objective(chain)
        if score.error > best_score.error:
            best, best_score = copy.deepcopy(chain), score
    return best, best_score
