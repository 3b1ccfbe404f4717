"""Affine registration: the 6 (2D) or 12 (3D) parameters of an affine map, optimised with Adam coarse to fine.

The map acts on physical coordinates centred on each image's grid centre and divided by E, half the largest
physical extent of the fixed image: a fixed point n maps to the moving point A n + t. So the identity aligns the
two grid centres, rotations are rotations in mm even on anisotropic grids, and A and t mean the same at every
pyramid level, where they carry over unchanged. (Learn2Reg pairs share one voxel grid; the world affines of
the NIfTI headers are ignored, as the official evaluation ignores them.) The similarity is local NCC for
pairs of one modality and Parzen-window mutual information for multi-modal pairs, unless set explicitly.
Samples beyond the moving image repeat its border, since anatomy usually continues past a scan's edge.

A prior on the log-scalings, w * sum_i (log s_i)^2 over the singular values s_i of A, keeps the optimiser
out of degenerate maps. Anatomy that barely changes along one axis (a trunk along z) lets a similarity prefer
collapsing that axis onto one well-matching slice, at a far lower loss than the true map's (synthetic
abdomen_ct, default scale, four test pairs: mean Dice 0.48 without the prior, 0.62 with it, identity 0.44).
The price is a bias towards unit scale: 0.23 instead of 0.06 voxels of error on a known 8 % zoom.

The result is a dense displacement in voxels of the fixed grid, like every other method's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import torch

from regbench.displacement import Displacement
from regbench.image import Image, Shape
from regbench.method import Capabilities, Hyperparams, Method, Resources, check_choice, similarity_by_modality
from regbench.methods.components.intensity import normalise_intensity
from regbench.methods.components.pyramid import check_pyramid, image_pyramid
from regbench.methods.components.similarity import lncc_loss, mi_loss, mse_loss, ncc_loss, ngf_loss
from regbench.pair import Pair
from regbench.spatial import identity_grid, warp

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SIMILARITIES = ("auto", "lncc", "ncc", "mse", "mi", "ngf")


@dataclass(frozen=True)
class AffineParams(Hyperparams):
    """Hyperparameters of ``affine``.

    Attributes:
        factors: pyramid levels as downsampling factors, coarse to fine. An affine map needs no fine detail,
            so the default stops at half resolution.
        iterations: Adam steps per level.
        lr: Adam learning rate, in the normalised units of A and t (t = 0.01 moves by 1 % of E).
        scale_prior: weight w of the log-scaling prior (see the module docstring); 0 switches it off.
        similarity: ``auto`` (LNCC for mono-modal, MI for multi-modal pairs) or one of lncc, ncc, mse, mi, ngf.
        window: LNCC window width in voxels of each level.
        bins: MI histogram bins.
    """

    factors: tuple[int, ...] = (4, 2)
    iterations: tuple[int, ...] = (100, 50)
    lr: float = 0.01
    scale_prior: float = 1.0
    similarity: str = "auto"
    window: int = 7
    bins: int = 32

    def __post_init__(self) -> None:
        check_pyramid(self, self.factors, self.iterations)
        check_choice(self, "similarity", SIMILARITIES)

    @classmethod
    def paper(cls) -> AffineParams:
        return cls(factors=(4, 2, 1), iterations=(200, 100, 50))

    @classmethod
    def smoke(cls) -> AffineParams:
        return cls(factors=(2,), iterations=(60,))


def physical_span(image: Image) -> torch.Tensor:
    """(ndim,) float64 distance in mm between the first and last voxel centres along each axis."""
    return torch.tensor([(n - 1) * s for n, s in zip(image.shape, image.spacing)], dtype=torch.float64)


def affine_disp(matrix: torch.Tensor, fixed_shape: Shape, moving_shape: Shape, *, fixed_span: torch.Tensor,
                moving_span: torch.Tensor, extent: float) -> torch.Tensor:
    """The dense displacement (1, ndim, *fixed_shape), in voxels, of the affine map ``matrix`` = [A | t].

    A fixed voxel x has normalised position n = (x / (m_f - 1) - 1/2) * span_f / E; it maps to A n + t, which
    lies at voxel y = ((A n + t) * E / span_m + 1/2) * (m_m - 1) of the moving grid; the displacement is y - x.
    Shapes may be those of any pyramid level: spans (mm) and E stay those of the full images.
    """
    ndim = len(fixed_shape)
    dtype, device = matrix.dtype, matrix.device
    view = (1, ndim, *([1] * ndim))

    def vector(values: Sequence[float] | torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(values, dtype=dtype, device=device).view(view)

    x = identity_grid(fixed_shape, dtype=dtype, device=device)
    n_fixed = (x / vector([m - 1 for m in fixed_shape]) - 0.5) * vector(fixed_span / extent)
    n_moving = torch.einsum("ij,bj...->bi...", matrix[:, :ndim], n_fixed) + matrix[:, ndim].view(view)
    y = (n_moving * vector(extent / moving_span) + 0.5) * vector([m - 1 for m in moving_shape])
    return y - x


def log_scale_penalty(linear: torch.Tensor) -> torch.Tensor:
    """sum_i (log s_i)^2 over the singular values s_i of the linear part A: 0 for any rotation, growing
    without bound as an axis collapses (s -> 0) or explodes."""
    return torch.log(torch.linalg.svdvals(linear)).square().sum()


def optimise_affine(fixed: torch.Tensor, moving: torch.Tensor, loss: Loss, *, fixed_span: torch.Tensor,
                    moving_span: torch.Tensor, factors: Sequence[int], iterations: Sequence[int], lr: float,
                    scale_prior: float) -> torch.Tensor:
    """The [A | t] matrix (ndim, ndim + 1) minimising ``loss(fixed, moving warped) + scale_prior *
    log_scale_penalty(A)`` over an image pyramid.

    ``fixed`` and ``moving`` are (1, 1, *spatial) normalised images. Starts from the identity; a fresh Adam
    per level. Reusable by any method that needs an affine pre-alignment with its own loss.
    """
    ndim = fixed.ndim - 2
    extent = float(fixed_span.max()) / 2
    linear = torch.eye(ndim, dtype=fixed.dtype, device=fixed.device).requires_grad_()
    translation = torch.zeros(ndim, 1, dtype=fixed.dtype, device=fixed.device, requires_grad=True)
    with torch.enable_grad():  # an optimisation whatever the caller's mode (a training cache prepares without)
        for fixed_level, moving_level, steps in zip(image_pyramid(fixed, factors), image_pyramid(moving, factors),
                                                    iterations):
            optimiser = torch.optim.Adam([linear, translation], lr=lr)
            for _ in range(steps):
                optimiser.zero_grad()
                disp = affine_disp(torch.cat([linear, translation], 1), tuple(fixed_level.shape[2:]),
                                   tuple(moving_level.shape[2:]), fixed_span=fixed_span, moving_span=moving_span,
                                   extent=extent)
                value = loss(fixed_level, warp(moving_level, disp, padding="border"))
                (value + scale_prior * log_scale_penalty(linear)).backward()
                optimiser.step()
    return torch.cat([linear, translation], 1).detach()


class Affine(Method):
    """Multi-resolution affine registration (the usual first step of every Learn2Reg pipeline)."""

    name = "affine"
    Params = AffineParams
    capabilities: ClassVar[Capabilities] = Capabilities(multimodal=True)
    resources: ClassVar[Resources] = Resources(threads=2, mem_mb=2000, gpu=True, pair_seconds=3)
    params: AffineParams

    def similarity_name(self, pair: Pair) -> str:
        """The configured similarity, or LNCC / MI by modality."""
        return similarity_by_modality(self.params.similarity, pair, mono="lncc", multi="mi")

    def loss(self, pair: Pair) -> Loss:
        """The similarity loss for this pair, with the configured settings."""
        losses: dict[str, Loss] = {
            "lncc": partial(lncc_loss, window=self.params.window), "ncc": ncc_loss, "mse": mse_loss,
            "mi": partial(mi_loss, bins=self.params.bins), "ngf": ngf_loss,
        }
        return losses[self.similarity_name(pair)]

    def matrix(self, pair: Pair) -> torch.Tensor:
        """The optimised [A | t] (ndim, ndim + 1) in the normalised coordinates of the module docstring."""
        return optimise_affine(
            normalise_intensity(self.to_tensor(pair.fixed.image)),
            normalise_intensity(self.to_tensor(pair.moving.image)), self.loss(pair),
            fixed_span=physical_span(pair.fixed.image), moving_span=physical_span(pair.moving.image),
            factors=self.params.factors, iterations=self.params.iterations, lr=self.params.lr,
            scale_prior=self.params.scale_prior)

    def estimate(self, pair: Pair) -> Displacement:
        fixed_span = physical_span(pair.fixed.image)
        disp = affine_disp(self.matrix(pair), pair.fixed.image.shape, pair.moving.image.shape,
                           fixed_span=fixed_span, moving_span=physical_span(pair.moving.image),
                           extent=float(fixed_span.max()) / 2)
        return Displacement.from_torch(disp)


def affine_start(method: Method, settings: AffineParams, pair: Pair) -> torch.Tensor:
    """The displacement (1, ndim, *fixed grid) that ``affine`` with ``settings`` estimates for ``pair``, seeded,
    threaded and placed as ``method``: the start of a method that registers what an affine pre-alignment left
    (``prealign`` of voxelmorph, gradirn and bayesian)."""
    affine = Affine(settings, seed=method.seed, threads=method.threads, device=method.device, dtype=method.dtype)
    return affine.estimate(pair).to_torch(method.dtype, method.device)
