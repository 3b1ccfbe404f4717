"""AdvChain: a bounded chain of realistic perturbations of a pair's moving image, differentiable in its parameters.

Chen, Qin, Ouyang, Wang, Qiu, Chen, Tarroni, Bai and Rueckert, "Enhancing MR image segmentation with realistic
adversarial data augmentation", Medical Image Analysis 2022, doi:10.1016/j.media.2022.102597 (AdvChain).
Written from the paper's description of its transformations (``../shared/seeds/methods_digest.md``); no code
of the authors' is used. The chain perturbs the moving image of a registration pair, in this order:

1. **affine** (rotation, scaling, shift) and **elastic** deformation: one geometric map T on the moving grid,
   T(y) = c + D^-1 (A D (E(y) - c) + t) with E(y) = y + e(y), c the grid centre, D the voxel spacing (mm),
   A = R(angles) diag(scales) in physical space and e a cubic B-spline on a coarse control grid (voxels).
   The moving image is resampled at T(y): its geometric displacement ``g(y) = T(y) - y`` is a Learn2Reg field
   (voxels, sampling the moving image; ``geometric_disp``) and is warped with ``regbench.spatial.warp``;
2. **gamma** u^gamma, **contrast** c (u - mean u) + mean u and a multiplicative **bias field** exp(B(x)),
   B a cubic B-spline on a coarser grid (AdvChain's log-space bias), on intensities u mapped to [0, 1] by
   the image's minimum and maximum;
3. additive Gaussian **noise** a z, z a fixed pattern of zero mean and unit variance drawn with the chain and
   a within [-bound, bound] (the noise's standard deviation is |a|, in units of the intensity range).

Warping first lets the region the moving image never covered take the image's minimum (zero padding of u)
and then the same intensity changes as the background. Every transformation has a bound (``ChainBounds``);
``budget`` in [0, 1] scales all of them (budget 0 is the identity). Parameters are unconstrained tensors p,
each mapped to budget * bound * tanh(p), so any optimiser, gradient or black box, stays within the bounds and
p = 0 is the identity. Departure from AdvChain: the noise pattern is fixed and only its amplitude is a
parameter (AdvChain optimises the whole pattern), so one small vector (``vector``) serves CMA-ES as well.

Ground truth stays exact (``perturb_pair``): a fixed voxel x that showed the moving point x + u(x) shows the
perturbed moving point T^-1(x + u(x)), and a moving keypoint p moves to T^-1(p). The affine part inverts in
closed form; E is inverted by the fixed-point iteration q <- w - e(q). The elastic amplitude is capped at
s / (4 ndim) voxels (s the control spacing in voxels), which keeps the Lipschitz constant of e at most 1/2,
so E is a diffeomorphism and each iteration at least halves the error: after ``INVERSE_ITERATIONS`` = 24 it is
below 2^-24 of the elastic bound. e is sampled between voxel centres by linear interpolation of its values
there, which is how the warped image itself is interpolated; the cap binds only on small grids (64 voxels
and 4 control points per axis in 3D allow 1.75 voxels, above the default 1.5).

The moving label map and mask are resampled with nearest neighbour, as every label map in regbench, which
moves their boundaries by up to half a voxel. Warped once more by the new true field (scipy, as the official
evaluation), they match the fixed labels within 0.01 Dice of the unperturbed pair for organ-sized structures
(one structure 70 voxels across at 96^2), but small structures lose more: on blob phantoms with the true field
giving Dice 1.0 before, 0.97 after for structures about 10 voxels across (96^2), 0.88 at 32^2 and 0.83 at 20^3.
``regbench.robustness`` therefore scores registrations of perturbed pairs on the original pair.

It lives in the core, beside ``spatial``, because both sides use it: the robustness track perturbs test pairs,
and the learning methods perturb training pairs (adversarial augmentation), and methods may not import tasks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from regbench import spatial
from regbench.displacement import Displacement
from regbench.image import Image, LabelMap, Shape, Spacing
from regbench.pair import Case, Pair

INVERSE_ITERATIONS = 24
"""Fixed-point iterations inverting the elastic part; each at least halves the error (module docstring)."""


@dataclass(frozen=True)
class ChainBounds:
    """The largest perturbation of each transformation at budget 1 (AdvChain's defaults where it has them).

    Attributes:
        bias: largest |log b(x)| of the bias field b (AdvChain's epsilon 0.3: b within [0.74, 1.35]).
        bias_points: control points of the bias spline per axis (AdvChain: spacing half the image).
        gamma: largest |log gamma| (0.3: gamma within [0.74, 1.35]).
        contrast: largest |log c| of the contrast factor c (0.2: c within [0.82, 1.22]).
        noise: largest noise standard deviation, as a fraction of the image's intensity range.
        rotation: largest rotation angle in degrees, about each axis in 3D (AdvChain: 30 degrees).
        scale: largest |s - 1| of the scaling s along each axis (AdvChain: 0.2).
        shift: largest shift as a fraction of the physical extent along each axis (AdvChain: 0.1).
        elastic: largest elastic displacement per component in voxels (AdvChain's epsilon 1.5), capped on
            small grids to keep the deformation invertible (module docstring).
        elastic_points: control points of the elastic spline per axis.
    """

    bias: float = 0.3
    bias_points: int = 3
    gamma: float = 0.3
    contrast: float = 0.2
    noise: float = 0.05
    rotation: float = 30.0
    scale: float = 0.2
    shift: float = 0.1
    elastic: float = 1.5
    elastic_points: int = 4

    def __post_init__(self) -> None:
        amplitudes = ("bias", "gamma", "contrast", "noise", "rotation", "scale", "shift", "elastic")
        negative = [f"{name}={getattr(self, name)}" for name in amplitudes if getattr(self, name) < 0]
        if negative:
            raise ValueError(f"ChainBounds: bounds must be >= 0, got {', '.join(negative)}")
        if self.bias_points < 2 or self.elastic_points < 2:
            raise ValueError(f"ChainBounds: need at least 2 control points per axis, got bias_points="
                             f"{self.bias_points} and elastic_points={self.elastic_points}")
        if self.scale >= 1:
            raise ValueError(f"ChainBounds: scale must be < 1 (a scaling of 1 - scale must stay positive), "
                             f"got {self.scale}")


def bspline_weights(size: int, points: int) -> np.ndarray:
    """(size, points) cubic B-spline weights of ``points`` control points spread over ``size`` voxels.

    Control point k sits at voxel k s, s = (size - 1) / (points - 1); the one beyond each end repeats the end
    coefficient. The weights are non-negative and sum to 1 at every voxel, so the spline stays within the
    range of its coefficients (bounds hold exactly) and its slope is at most the largest difference of
    neighbouring coefficients divided by s.
    """
    spacing = (size - 1) / (points - 1) if size > 1 else 1.0
    t = np.arange(size, dtype=np.float64)[:, None] / spacing - np.arange(-1, points + 1)[None, :]
    a = np.abs(t)
    basis = np.where(a < 1, 2 / 3 - a**2 + a**3 / 2, np.where(a < 2, (2 - a) ** 3 / 6, 0.0))
    weights = basis[:, 1:-1].copy()
    weights[:, 0] += basis[:, 0]
    weights[:, -1] += basis[:, -1]
    return weights


def spline_field(coefficients: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    """A dense field (C, *sizes) from control coefficients (C, *points), one weight matrix (size, points) per
    axis (``bspline_weights``): a separable tensor product."""
    field = coefficients
    for axis, matrix in enumerate(weights):
        field = torch.tensordot(matrix, field.movedim(axis + 1, 0), dims=([1], [0])).movedim(0, axis + 1)
    return field


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrix from one angle (2D) or three (3D: about array axes 0, 1, 2, applied in reverse order)."""
    if angles.numel() == 1:
        cos, sin = torch.cos(angles[0]), torch.sin(angles[0])
        return torch.stack([torch.stack([cos, -sin]), torch.stack([sin, cos])])
    one, zero = torch.ones_like(angles[0]), torch.zeros_like(angles[0])
    matrices = []
    for axis, angle in enumerate(angles):
        cos, sin = torch.cos(angle), torch.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        rows = [[one, zero, zero], [zero, one, zero], [zero, zero, one]]
        rows[i][i], rows[i][j], rows[j][i], rows[j][j] = cos, -sin, sin, cos
        matrices.append(torch.stack([torch.stack(row) for row in rows]))
    return matrices[0] @ matrices[1] @ matrices[2]


class AdvChain(nn.Module):
    """The perturbation chain of one moving grid (module docstring).

    Args:
        shape: the moving image's grid.
        spacing: its voxel size in mm (default 1 along every axis).
        bounds: the bound of every transformation at budget 1.
        budget: in [0, 1]; scales every bound.
        dtype: of the parameters and of everything computed (float64 keeps the ground truth exact to rounding).

    Parameters (unconstrained, identity at 0; ``values`` maps them into their ranges): ``rotation`` (1 or 3),
    ``scale`` (ndim), ``shift`` (ndim), ``elastic`` (ndim, *elastic_points), ``gamma``, ``contrast``,
    ``bias`` (*bias_points) and ``noise`` (the amplitude of the pattern buffer ``noise_pattern``).
    """

    def __init__(self, shape: Shape, spacing: Spacing | None = None, *, bounds: ChainBounds = ChainBounds(),
                 budget: float = 1.0, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        ndim = len(shape)
        if ndim not in (2, 3) or min(shape) < 2:
            raise ValueError(f"AdvChain(): expected a 2D or 3D grid at least 2 voxels a side, got {tuple(shape)}")
        if not 0 <= budget <= 1:
            raise ValueError(f"AdvChain(): budget must be within [0, 1], got {budget}")
        spacing = (1.0,) * ndim if spacing is None else tuple(float(s) for s in spacing)
        if len(spacing) != ndim or min(spacing) <= 0:
            raise ValueError(f"AdvChain(): expected {ndim} positive spacings, got {spacing}")
        self.shape, self.spacing, self.bounds, self.budget, self.dtype = tuple(shape), spacing, bounds, budget, dtype
        control = (bounds.elastic_points,) * ndim
        sizes = {"rotation": (1 if ndim == 2 else 3,), "scale": (ndim,), "shift": (ndim,),
                 "elastic": (ndim, *control), "gamma": (1,), "contrast": (1,),
                 "bias": (1, *(bounds.bias_points,) * ndim), "noise": (1,)}
        for name, size in sizes.items():
            self.register_parameter(name, nn.Parameter(torch.zeros(size, dtype=dtype)))
        self.register_buffer("noise_pattern", torch.zeros((1, 1, *shape), dtype=dtype))
        self._elastic_weights = [torch.as_tensor(bspline_weights(n, bounds.elastic_points), dtype=dtype)
                                 for n in shape]
        self._bias_weights = [torch.as_tensor(bspline_weights(n, bounds.bias_points), dtype=dtype) for n in shape]

    @classmethod
    def for_image(cls, image: Image, **kwargs: object) -> AdvChain:
        """The chain of ``image``'s grid and spacing (keyword arguments as for the constructor)."""
        return cls(image.shape, image.spacing, **kwargs)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def elastic_bound(self) -> float:
        """The elastic bound in voxels at budget 1: ``bounds.elastic``, capped at s / (4 ndim) on small grids."""
        spacing = min((n - 1) / (self.bounds.elastic_points - 1) for n in self.shape)
        return min(self.bounds.elastic, spacing / (4 * self.ndim))

    def limits(self) -> dict[str, float]:
        """The largest absolute value of each parameter's mapped value (``values``) at this budget; rotation in
        radians, shift as a fraction of the extent, gamma, contrast and bias in log space."""
        b = self.bounds
        at_one = {"rotation": math.radians(b.rotation), "scale": b.scale, "shift": b.shift,
                  "elastic": self.elastic_bound, "gamma": b.gamma, "contrast": b.contrast, "bias": b.bias,
                  "noise": b.noise}
        return {name: self.budget * value for name, value in at_one.items()}

    def values(self) -> dict[str, torch.Tensor]:
        """Every parameter in its bounded range: limit * tanh(p)."""
        limits = self.limits()
        return {name: limits[name] * torch.tanh(p) for name, p in self.named_parameters()}

    # Random draws and the flat view -------------------------------------------------------------------------

    def randomise_(self, rng: np.random.Generator) -> AdvChain:
        """Draw every mapped value uniformly within its bounds and a new noise pattern (zero mean, unit
        standard deviation) from ``rng``; returns the chain. The same generator state gives the same chain."""
        with torch.no_grad():
            for p in self.parameters():
                uniform = rng.uniform(-1.0, 1.0, tuple(p.shape)) * (1 - 1e-9)
                p.copy_(torch.as_tensor(np.arctanh(uniform), dtype=self.dtype))
            pattern = rng.standard_normal(self.shape)
            pattern = (pattern - pattern.mean()) / max(pattern.std(), 1e-12)
            self.noise_pattern.copy_(torch.as_tensor(pattern, dtype=self.dtype)[None, None])
        return self

    def vector(self) -> np.ndarray:
        """All unconstrained parameters as one float64 vector (for black-box optimisers such as CMA-ES)."""
        return nn.utils.parameters_to_vector(self.parameters()).detach().cpu().numpy().astype(np.float64)

    def set_vector(self, vector: np.ndarray) -> AdvChain:
        """Set all unconstrained parameters from a vector laid out as ``vector()``; returns the chain."""
        vector = np.asarray(vector, dtype=np.float64)
        size = sum(p.numel() for p in self.parameters())
        if vector.shape != (size,):
            raise ValueError(f"AdvChain.set_vector(): expected a vector of {size} values, got shape {vector.shape}")
        with torch.no_grad():
            nn.utils.vector_to_parameters(torch.as_tensor(vector, dtype=self.dtype), self.parameters())
        return self

    # Geometry -----------------------------------------------------------------------------------------------

    def _affine_parts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(R, scales, t in mm) of the affine part A = R diag(scales)."""
        values = self.values()
        extent = torch.tensor([(n - 1) * s for n, s in zip(self.shape, self.spacing)], dtype=self.dtype)
        return _rotation(values["rotation"]), 1 + values["scale"], values["shift"] * extent

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A (ndim, ndim), t (ndim,) in mm) of the affine part, acting on physical coordinates centred on the
        grid centre: A = R(angles) diag(scales)."""
        rotation, scales, shift = self._affine_parts()
        return rotation * scales[None, :], shift

    def elastic_disp(self) -> torch.Tensor:
        """The elastic displacement e (1, ndim, *shape), voxels."""
        return spline_field(self.values()["elastic"], self._elastic_weights)[None]

    def log_bias_field(self) -> torch.Tensor:
        """log b (1, 1, *shape) of the multiplicative bias field b."""
        return spline_field(self.values()["bias"], self._bias_weights)[None]

    def _points_view(self, vector: torch.Tensor | list[float] | tuple[float, ...]) -> torch.Tensor:
        """A per-axis vector shaped to broadcast over (1, ndim, *S) coordinates."""
        return torch.as_tensor(vector, dtype=self.dtype).view(1, self.ndim, *([1] * self.ndim))

    def geometric_disp(self) -> torch.Tensor:
        """g (1, ndim, *shape): the perturbed moving image at y is the moving image at y + g(y) (Learn2Reg
        convention on the moving grid, voxels). T(y) = c + D^-1 (A D (E(y) - c) + t)."""
        matrix, shift = self.affine()
        grid = spatial.identity_grid(self.shape, dtype=self.dtype)
        centre, spacing = self._points_view([(n - 1) / 2 for n in self.shape]), self._points_view(self.spacing)
        physical = (grid + self.elastic_disp() - centre) * spacing
        moved = torch.einsum("ij,bj...->bi...", matrix, physical) + self._points_view(shift)
        return centre + moved / spacing - grid

    def inverse_points(self, points: torch.Tensor) -> torch.Tensor:
        """T^-1 of moving-grid coordinates ``points`` (1, ndim, *S), S any ndim-axis arrangement (a grid, or
        (N, 1[, 1]) for N points): where each moving point lies in the perturbed moving image (voxels).

        The affine part inverts in closed form, E(q) = c + D^-1 diag(1 / scales) R^T (D (z - c) - t); then
        the fixed-point iteration q <- w - e(q) inverts E (module docstring)."""
        rotation, scales, shift = self._affine_parts()
        centre, spacing = self._points_view([(n - 1) / 2 for n in self.shape]), self._points_view(self.spacing)
        unrotated = torch.einsum("ji,bj...->bi...", rotation, (points - centre) * spacing - self._points_view(shift))
        target = centre + unrotated / self._points_view(scales) / spacing
        elastic = self.elastic_disp()
        offset = spatial.identity_grid(tuple(points.shape[2:]), dtype=self.dtype)
        estimate = target
        for _ in range(INVERSE_ITERATIONS):
            estimate = target - spatial.warp(elastic, estimate - offset, padding="border")
        return estimate

    # Intensities --------------------------------------------------------------------------------------------

    def apply(self, moving: torch.Tensor) -> torch.Tensor:
        """The perturbed moving image, (1, 1, *shape), from the moving image (1, 1, *shape); differentiable in
        the parameters (and the image). Intensities keep the image's units."""
        if tuple(moving.shape) != (1, 1, *self.shape):
            raise ValueError(f"AdvChain.apply(): expected a moving image (1, 1, *{self.shape}), "
                             f"got {tuple(moving.shape)}")
        moving = moving.to(self.dtype)
        low, high = moving.detach().min(), moving.detach().max()
        span = (high - low).clamp_min(torch.finfo(self.dtype).tiny)
        values = self.values()
        u = spatial.warp((moving - low) / span, self.geometric_disp(), padding="zeros")
        u = torch.where(u > 0, u.clamp_min(torch.finfo(self.dtype).tiny) ** torch.exp(values["gamma"]), 0.0)
        mean = u.mean()
        u = torch.exp(values["contrast"]) * (u - mean) + mean
        u = u * torch.exp(self.log_bias_field())
        u = u + values["noise"] * self.noise_pattern
        return low + span * u

    forward = apply


def perturbed_truth(chain: AdvChain, truth: torch.Tensor) -> torch.Tensor:
    """The true displacement (1, ndim, *fixed) from the fixed image to the perturbed moving image, given the
    one to the moving image: x + u'(x) = T^-1(x + u(x)). Differentiable in the chain's parameters."""
    grid = spatial.identity_grid(tuple(truth.shape[2:]), dtype=chain.dtype)
    return chain.inverse_points(grid + truth.to(chain.dtype)) - grid


def perturbed_keypoints(chain: AdvChain, keypoints: torch.Tensor) -> torch.Tensor:
    """Moving keypoints (N, ndim), voxels, moved to where they lie in the perturbed moving image, T^-1(p)."""
    points = keypoints.to(chain.dtype).T.reshape(1, chain.ndim, -1, *([1] * (chain.ndim - 1)))
    return chain.inverse_points(points).reshape(chain.ndim, -1).T


def perturb_pair(pair: Pair, chain: AdvChain, truth: Displacement | None = None) -> tuple[Pair, Displacement | None]:
    """The pair with its moving case perturbed by ``chain``, and the true displacement of the new pair.

    The moving image goes through the whole chain; its label map and mask through the geometric part
    (nearest neighbour, 0 outside, as ``regbench.spatial.warp_labels``); its keypoints through T^-1, so row i
    still corresponds to fixed keypoint i. The fixed case and the pair's id are unchanged. Without ``truth``
    (real data) the second value is None.
    """
    moving = pair.moving
    if tuple(moving.image.shape) != chain.shape:
        raise ValueError(f"perturb_pair(): the chain is for a {chain.shape} grid, pair {pair.id.key} has a "
                         f"moving image of {moving.image.shape}")
    with torch.no_grad():
        image = chain.apply(torch.as_tensor(np.asarray(moving.image.data, dtype=np.float64))[None, None])
        disp = chain.geometric_disp()

        def warped(labels: LabelMap | None) -> LabelMap | None:
            if labels is None:
                return None
            data = torch.as_tensor(np.asarray(labels.data).astype(np.int64))[None, None]
            return LabelMap(spatial.warp_labels(data, disp)[0, 0].numpy().astype(labels.data.dtype), labels.affine)

        keypoints = None
        if moving.keypoints is not None:
            keypoints = perturbed_keypoints(chain, torch.as_tensor(moving.keypoints, dtype=torch.float64)).numpy()
        new_truth = None
        if truth is not None:
            new_truth = Displacement.from_torch(perturbed_truth(chain, truth.to_torch(torch.float64)))
    new_moving = Case(moving.id, Image(image[0, 0].numpy().astype(moving.image.data.dtype), moving.image.affine),
                      warped(moving.labels), warped(moving.mask), keypoints, moving.modality)
    return Pair(pair.id, pair.fixed, new_moving), new_truth
