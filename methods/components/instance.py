"""Instance optimisation: a field refined on the pair itself by Adam steps, as Learn2Reg entries refine the
output of their networks (and as ConvexAdam refines its convex stage, whose Adam stage this is).

The field is the control grid of a B-spline-like parametrisation (``smooth_field``) on a grid ``spacing`` times
coarser than the image; Adam minimises the SSD of MIND-SSC descriptors (modality independent, so MR-CT pairs
need nothing else) of the fixed image and of the moving image warped by the smoothed field, plus lambda times
its diffusion energy (``diffusion_loss / ndim``, the reference's convention). ``InstanceOptimised`` puts this
after any method: the workflow's ``<method>+io`` rows (config ``instance_optimisation``) are it, so the gain
of instance optimisation is reported beside what a network learned instead of hidden in it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import torch

from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.method import Hyperparams, Method
from regbench.methods.components.filters import box_filter
from regbench.methods.components.intensity import normalise_intensity
from regbench.methods.components.mind import mind_ssc
from regbench.methods.components.pyramid import downsample_image, resize_disp
from regbench.methods.components.regularisers import diffusion_loss
from regbench.pair import Pair
from regbench.spatial import warp

SUFFIX = "+io"
"""What the workflow appends to a method's name for its instance-optimised row (``voxelmorph+io``)."""


def smooth_field(field: torch.Tensor) -> torch.Tensor:
    """Three passes of a 3x3(x3) box filter: approximately a cubic B-spline of the control values."""
    return box_filter(box_filter(box_filter(field, 3), 3), 3)


def adam_refine(fixed: torch.Tensor, moving: torch.Tensor, initial: torch.Tensor, *, spacing: int,
                iterations: int, lr: float, smoothness: float) -> torch.Tensor:
    """``initial`` (1, ndim, any grid, voxels of that grid) refined for features ``fixed`` and ``moving``
    (1, C, *spatial, one grid): Adam on the SSD of the features (summed over channels, averaged over voxels)
    plus ``smoothness`` times the diffusion energy, on a grid ``spacing`` times coarser. Returns the smoothed
    field (1, ndim, *coarse grid) in voxels of the coarse grid."""
    fixed, moving = downsample_image(fixed, spacing), downsample_image(moving, spacing)
    ndim = fixed.ndim - 2
    control = resize_disp(initial.detach(), tuple(fixed.shape[2:])).requires_grad_()
    optimiser = torch.optim.Adam([control], lr=lr)
    for _ in range(iterations):
        optimiser.zero_grad()
        field = smooth_field(control)
        cost = (warp(moving, field, padding="border") - fixed).square().sum(1).mean()
        (cost + smoothness * diffusion_loss(field) / ndim).backward()
        optimiser.step()
    return smooth_field(control).detach()


def pair_mind(method: Method, pair: Pair, *, radius: int, dilation: int, needs: str) -> tuple[torch.Tensor, ...]:
    """MIND-SSC descriptors (1, P, *spatial) of ``pair``'s normalised fixed and moving images, on the method's
    device and dtype; a pair on two grids is refused, saying what of ``method`` ``needs`` one grid."""
    if pair.fixed.image.shape != pair.moving.image.shape:
        raise RegbenchError(f"{method.name}: pair {pair.id.key} has fixed grid {pair.fixed.image.shape} and "
                            f"moving grid {pair.moving.image.shape}; {needs} one grid")
    with torch.no_grad():
        return tuple(mind_ssc(normalise_intensity(method.to_tensor(case.image)), radius=radius, dilation=dilation)
                     for case in (pair.fixed, pair.moving))


@dataclass(frozen=True)
class InstanceParams(Hyperparams):
    """Settings of the instance optimisation (ConvexAdam's Adam stage and its defaults).

    Attributes:
        iterations: Adam steps per pair.
        spacing: how many times coarser than the image the optimised grid is.
        lr: Adam learning rate, in voxels of that grid.
        smoothness: lambda, the weight of the diffusion energy.
        mind_radius: MIND-SSC patch radius in voxels.
        mind_dilation: MIND-SSC neighbour distance in voxels.
    """

    iterations: int = 80
    spacing: int = 2
    lr: float = 1.0
    smoothness: float = 1.25
    mind_radius: int = 1
    mind_dilation: int = 2

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.spacing < 1 or self.lr <= 0 or self.smoothness < 0:
            raise RegbenchError(f"{type(self).__name__}: need iterations >= 1, spacing >= 1, lr > 0 and "
                                f"smoothness >= 0, got {self.iterations}, {self.spacing}, {self.lr} and "
                                f"{self.smoothness}")

    @classmethod
    def smoke(cls) -> InstanceParams:
        return cls(iterations=10)


class InstanceOptimised(Method):
    """``inner``'s registration, then ``adam_refine`` of its field on the pair: the ``<inner>+io`` row.

    It takes ``inner``'s seed, threads and device and declares its capabilities, less uncertainty (the
    refined field has no posterior). Timed as one registration, so the runtime column shows the cost of both.
    """

    Params = InstanceParams
    params: InstanceParams

    def __init__(self, inner: Method, params: InstanceParams | None = None) -> None:
        super().__init__(params, seed=inner.seed, threads=inner.threads, device=inner.device, dtype=inner.dtype)
        self.inner = inner
        self.name = f"{inner.name}{SUFFIX}"
        self.capabilities = dataclasses.replace(inner.capabilities, uncertainty=False)
        self.resources = inner.resources

    def estimate(self, pair: Pair) -> Displacement:
        return self.refine(pair, self.inner.register(pair))

    def refine(self, pair: Pair, initial: Displacement) -> Displacement:
        """``initial`` (``inner``'s field of ``pair``) refined on the pair."""
        p = self.params
        fixed, moving = pair_mind(self, pair, radius=p.mind_radius, dilation=p.mind_dilation,
                                  needs="the refinement compares them on")
        field = adam_refine(fixed, moving, initial.to_torch(self.dtype, self.device), spacing=p.spacing,
                            iterations=p.iterations, lr=p.lr, smoothness=p.smoothness)
        return Displacement.from_torch(resize_disp(field, pair.fixed.image.shape))

    def timed_refine(self, pair: Pair, initial: Displacement, initial_seconds: float) -> tuple[Displacement, float]:
        """What ``timed_register`` returns, from ``inner``'s field of the pair and the seconds it took: a job that
        writes both rows registers each pair with ``inner`` once."""
        disp, seconds = self.timed(pair, lambda: self.refine(pair, initial))
        return disp, initial_seconds + seconds
