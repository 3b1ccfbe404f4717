"""CSAIN: one registration network for any spatially variant regularisation, and weights tuned on validation.

Wang, Qiu and Qin, "Conditional deformable image registration with spatially-variant and adaptive
regularization", ISBI 2023, arXiv:2303.10700 (doi:10.48550/arXiv.2303.10700). Written from the paper and a
reading of the authors' code (github.com/Yinsong0510/Conditional-Deformable-Image-Registration-with-Spatially-
variant-and-Adaptive-Regularization), which builds on LapIRN (Mok and Chung, MICCAI 2020,
doi:10.1007/978-3-030-59716-0_21) and its conditional variant cLapIRN (MICCAI 2021,
doi:10.1007/978-3-030-87202-1_4).

The fixed image is divided into R regions and each region r gets its own regularisation weight lambda_r. The
per-voxel weight map Lambda(x) = lambda_{region(x)} is the hyperparameter map H of the paper. The network
is conditioned on it, so that one trained model can register with any weight vector. Training minimises,
over random training pairs and a fresh random weight vector at every step,

    L = L_sim(fixed, moving o phi) + mean_x Lambda(x) * |grad u(x)|^2 / ndim^2

with L_sim the squared local NCC. The regulariser is ``diffusion_loss(u, weight=Lambda) / ndim**2``, the
mean squared derivative, so a uniform lambda means what VoxelMorph's lambda means. Each lambda_r is drawn
log-uniformly from ``weight_range``.

Network (LapIRN's coarse-to-fine pyramid). One level per factor in ``levels``, trained one after another;
each level adds a displacement to the upsampled field of the coarser levels. A level sees the moving image
warped by that field, the fixed image and the field itself. Its parts:

- an encoder (conv, LeakyReLU, conv) with 4c feature channels;
- a stride-2 convolution; the coarser level's features are added here;
- ``blocks`` pre-activation residual blocks with CSAIN, each followed by a LeakyReLU;
- upsampling and concatenation with the encoder features;
- two output convolutions and a softsign, scaled by ``range_flow``.

CSAIN(x, H) = InstanceNorm(x) * (1 + gamma(E(H))) + beta(E(H)). E encodes the weight map (conv, ReLU, 2c
channels) on the grid of the residual blocks; gamma and beta are a 3x3 convolution and a LeakyReLU each, so
scale and shift vary per voxel.

Regions: intensity classes of the fixed image. 1-D k-means of the smoothed, [0, 1]-normalised fixed
image gives R regions, numbered from dark to bright (``intensity_regions``). For brain MR that is background,
CSF, grey matter, white matter; for CT air, fat, soft tissue, bone. Why not labels? The paper uses a
4-class tissue segmentation of the fixed image, and a benchmark blinds the labels of test images. Using
clustering at training, tuning and test alike keeps the meaning of each lambda_r the same everywhere.
So the method never needs label maps to train.

Automatic hyperparameter optimisation (the paper's second contribution), part of ``fit``. After training,
the network is frozen and the weight vector is tuned for the mean Dice of the task's validation pairs,
whose labels training may read: Learn2Reg ships them, and training never sees those cases. The search is a
coordinate search over a log grid of ``tuning_grid`` values in ``weight_range``:

1. the uniform vectors;
2. then ``tuning_rounds`` sweeps over the regions, one lambda_r at a time.

It starts from the default weights (every lambda_r the geometric centre of ``weight_range``) and accepts
only improvements. The paper instead runs Adam on the weight vector against an image-based Dice loss. The
result goes to ``workdir/tuned_weights.json`` (every trial with its score) and into the state, so ``load``
restores it. Registration uses ``weights`` when set, otherwise the tuned (or, without validation labels,
the default) weights. Tuning scores the network as trained, without the optional instance fine-tuning.

Departures from the reference code, besides the CPU sizes:
- upsampling inside a level is linear interpolation, not a transposed convolution (so odd grids work);
- the weight map is lambda itself, not the paper's H with weight 10 H^2 in normalised coordinates, and the
  network sees it as log(lambda / lambda_min) / log(lambda_max / lambda_min);
- memberships are soft at region borders on coarser levels;
- one LNCC window serves every level;
- the last output convolution starts near zero, so training starts from the identity;
- optional instance fine-tuning at registration (``instance_iterations``, off but in the smoke preset).

Fixed and moving images must share one grid, as in every Learn2Reg task.

Settings: the CPU defaults (levels 8 and 4, 300 + 600 steps, c = 4, two blocks, weights in [0.1, 10]) train
on default-scale brain_mr (64x76x64, 132 pairs) in about 100 s of CPU time, tuning included. Four test
pairs, measured on a shared machine:

- brain_mr: Dice 0.695 (identity), 0.748 at a uniform weight 0.1, 0.760 at 3, 0.758 at 10, 0.761 tuned;
  SDlogJ falls from 0.050 at 0.1 to 0.041 at 10.
- cardiac_mr: identity 0.388, then 0.924 at 0.1 down to 0.883 at 10 (SDlogJ 0.053 to 0.045). Levels (4, 2)
  reach 0.951 to 0.917.
- The weights matter more with the range (0.01, 100): on cardiac_mr Dice falls from 0.80 to 0.64 and SDlogJ
  from 0.052 to 0.018 between 0.01 and 100. But the best Dice is lower (brain_mr 0.725 instead of 0.76):
  the few training steps are spread over extreme weights.
- Levels (4, 2) cost 0.74 s of CPU per 3D step against 0.09 s for (8, 4), and did worse on brain_mr in
  the same time (0.707 after 150 + 150 steps).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from regbench.dataset import Task
from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.image import Image, Shape
from regbench.method import Capabilities, NetworkMethod, Resources
from regbench.methods.components.filters import gaussian_blur
from regbench.methods.components.intensity import normalise_intensity
from regbench.methods.components.overlap import one_hot, soft_dice_loss
from regbench.methods.components.pyramid import check_pyramid, downsample_image, resize_disp, resize_image
from regbench.methods.components.regularisers import diffusion_loss
from regbench.methods.components.similarity import lncc_loss
from regbench.pair import Pair
from regbench.spatial import warp, warp_labels
from regbench.training import TrainingMonitor, TrainingParams

TUNING_RECORD = "tuned_weights.json"
WEIGHTS_KEY = "regularisation_weights"


@dataclass(frozen=True)
class CSAINParams(TrainingParams):
    """Hyperparameters of ``csain``.

    Attributes:
        levels: pyramid factors of the network's levels, coarse to fine (the paper: 4, 2, 1). The CPU
            default stops at a quarter of the resolution and resamples the field to the full grid; for
            2D tasks (4, 2) costs about the same as (8, 4) does in 3D and registers more accurately.
        iterations: training steps per level, one random training pair and weight vector each (the paper:
            120k, 160k, 240k).
        freeze: steps at the start of each level's training during which the coarser levels stay fixed
            (the paper: 3000).
        channels: c, the paper's ``start_channel`` (64). Features have 4c channels and the weight-map
            encoder 2c.
        blocks: residual CSAIN blocks per level (the paper: 5).
        lr: Adam learning rate (the paper: 1e-4).
        window: LNCC window width in voxels (the paper: 3 at the coarsest level, 5 and more above).
        range_flow: the largest displacement a level adds, as a fraction of half the image extent
            (LapIRN's 0.4 in normalised coordinates).
        regions: R, the number of intensity classes with their own weight (the paper: 5, background and
            four tissue classes of a segmentation).
        smoothing: sigma in voxels of the Gaussian blur applied before clustering, so that noise does not
            speckle the regions.
        weight_range: (lambda_min, lambda_max), the range of weights sampled in training, searched in
            tuning and accepted at registration.
        weights: lambda_1..lambda_R (dark to bright) to register with; None uses the tuned weights.
        tune: tune the weights on the validation pairs after training.
        tuning_grid: log-spaced values per weight in the tuning search (both ends of ``weight_range``
            included).
        tuning_rounds: sweeps over the regions after the uniform sweep.
        instance_iterations: Adam steps fine-tuning a copy of the network on each pair at registration,
            on the training objective at the registration weights (not in the paper; as ``voxelmorph``'s
            option). 0, the default and the paper's, registers with the trained network as it is.
    """

    levels: tuple[int, ...] = (8, 4)
    iterations: tuple[int, ...] = (300, 600)
    freeze: int = 30
    channels: int = 4
    blocks: int = 2
    lr: float = 1e-3
    window: int = 5
    range_flow: float = 0.4
    regions: int = 4
    smoothing: float = 1.0
    weight_range: tuple[float, float] = (0.1, 10.0)
    weights: tuple[float, ...] | None = None
    tune: bool = True
    tuning_grid: int = 5
    tuning_rounds: int = 1
    instance_iterations: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        check_pyramid(self, self.levels, self.iterations)
        if min(self.iterations) < 1 or self.freeze < 0:
            raise RegbenchError(f"{owner}: need iterations >= 1 per level and freeze >= 0, "
                                f"got {self.iterations} and {self.freeze}")
        if self.channels < 1 or self.blocks < 1 or self.regions < 1:
            raise RegbenchError(f"{owner}: channels, blocks and regions must be >= 1, "
                                f"got {self.channels}, {self.blocks} and {self.regions}")
        if self.window < 1 or self.window % 2 == 0 or self.range_flow <= 0 or self.smoothing < 0:
            raise RegbenchError(f"{owner}: need an odd window >= 1, range_flow > 0 and smoothing >= 0, "
                                f"got {self.window}, {self.range_flow} and {self.smoothing}")
        if len(self.weight_range) != 2 or not 0 < self.weight_range[0] < self.weight_range[1]:
            raise RegbenchError(f"{owner}: weight_range must be (lambda_min, lambda_max) with "
                                f"0 < lambda_min < lambda_max, got {self.weight_range}")
        if self.tuning_grid < 2 or self.tuning_rounds < 0 or self.instance_iterations < 0:
            raise RegbenchError(f"{owner}: need tuning_grid >= 2, tuning_rounds >= 0 and instance_iterations "
                                f">= 0, got {self.tuning_grid}, {self.tuning_rounds} and {self.instance_iterations}")
        if self.weights is not None:  # one per region, within the trained range (nothing was learned outside)
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))  # a YAML list
            low, high = self.weight_range
            if len(self.weights) != self.regions or not all(low <= w <= high for w in self.weights):
                raise RegbenchError(f"{owner}: weights must be {self.regions} values (one per region) within "
                                    f"weight_range [{low:g}, {high:g}], got {self.weights}")

    @property
    def default_weights(self) -> tuple[float, ...]:
        """Every region at the geometric centre of ``weight_range``: where tuning starts."""
        return (math.sqrt(self.weight_range[0] * self.weight_range[1]),) * self.regions

    @classmethod
    def paper(cls) -> CSAINParams:
        """The authors' code: three levels, c = 64, five blocks, Adam 1e-4, five regions. Its weights are
        10 H^2 with H uniform in [0, 1), applied to fields in normalised units (twice voxels): 0 to 40 in
        these units. The range starts at 0.01 because a log range cannot start at 0."""
        return cls(levels=(4, 2, 1), iterations=(120_000, 160_000, 240_000), freeze=3000, channels=64,
                   blocks=5, lr=1e-4, regions=5, weight_range=(0.01, 40.0))

    @classmethod
    def smoke(cls) -> CSAINParams:
        """Two tiny levels, a few steps each, and a 3-point tuning grid; 10 instance steps, so that smoke runs
        exercise fine-tuning too (and a network trained on a handful of pairs for seconds still registers
        a new pair sensibly)."""
        return cls(levels=(4, 2), iterations=(30, 30), freeze=5, channels=2, blocks=1, lr=3e-3, regions=3,
                   tuning_grid=3, instance_iterations=10,
                   validate_every=15, validation_pairs=1)


def intensity_regions(image: torch.Tensor, regions: int, *, sigma: float = 1.0,
                      iterations: int = 30) -> torch.Tensor:
    """The region index (0 .. regions - 1, dark to bright) of every voxel of an image (1, 1, *spatial) in
    [0, 1]: 1-D k-means (Lloyd) of the Gaussian-smoothed intensities.

    Centres start evenly spread over [0, 1] and stay sorted (in 1-D each cluster is an interval between
    midpoints), so region r is the r-th intensity class of every image alike. A cluster that empties keeps
    its centre. Returns int64, same shape as ``image``.
    """
    values = gaussian_blur(image, sigma).flatten()
    centres = (torch.arange(regions, dtype=values.dtype, device=values.device) + 0.5) / regions
    index = torch.zeros_like(values, dtype=torch.int64)
    for _ in range(iterations):
        index = torch.bucketize(values, (centres[1:] + centres[:-1]) / 2)
        counts = torch.bincount(index, minlength=regions).to(values.dtype)
        sums = torch.zeros_like(centres).scatter_add_(0, index, values)
        updated = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
        if torch.equal(updated, centres):
            break
        centres = updated
    return index.view(image.shape)


# Network ---------------------------------------------------------------------------------------------------


def _conv(ndim: int, in_channels: int, out_channels: int, *, stride: int = 1, bias: bool = True) -> nn.Module:
    return (nn.Conv2d if ndim == 2 else nn.Conv3d)(in_channels, out_channels, 3, stride=stride, padding=1,
                                                   bias=bias)


def _resize(x: torch.Tensor, shape: Shape) -> torch.Tensor:
    """Features onto ``shape`` (a no-op where they are there already)."""
    return x if tuple(x.shape[2:]) == tuple(shape) else resize_image(x, shape)


class CSAIN(nn.Module):
    """Conditional spatially adaptive instance normalisation: InstanceNorm(x) * (1 + gamma) + beta, with
    gamma and beta (B, channels, *spatial) predicted from the encoded weight map (B, code_channels, *spatial)
    on x's grid. With gamma = beta = 0 it is plain instance normalisation."""

    def __init__(self, ndim: int, channels: int, code_channels: int) -> None:
        super().__init__()
        self.norm = (nn.InstanceNorm2d if ndim == 2 else nn.InstanceNorm3d)(channels)
        self.gamma = nn.Sequential(_conv(ndim, code_channels, channels, bias=False), nn.LeakyReLU(0.2))
        self.beta = nn.Sequential(_conv(ndim, code_channels, channels, bias=False), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * (1 + self.gamma(code)) + self.beta(code)


class ResidualCSAIN(nn.Module):
    """Pre-activation residual block: x + conv(act(CSAIN(conv(act(CSAIN(x)))))) (the paper's PreActBlock)."""

    def __init__(self, ndim: int, channels: int, code_channels: int) -> None:
        super().__init__()
        self.norm1 = CSAIN(ndim, channels, code_channels)
        self.conv1 = _conv(ndim, channels, channels, bias=False)
        self.norm2 = CSAIN(ndim, channels, code_channels)
        self.conv2 = _conv(ndim, channels, channels, bias=False)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.leaky_relu(self.norm1(x, code), 0.2))
        return x + self.conv2(F.leaky_relu(self.norm2(out, code), 0.2))


class CSAINLevel(nn.Module):
    """One pyramid level: (input (B, in_channels, *grid), weight code map (B, 1, *grid), coarser features or
    None) -> (softsign output (B, ndim, *grid) in [-1, 1], features (B, 4c, *grid) for the next level)."""

    def __init__(self, ndim: int, in_channels: int, channels: int, blocks: int) -> None:
        super().__init__()
        features = 4 * channels
        self.encoder = nn.Sequential(_conv(ndim, in_channels, features, bias=False), nn.LeakyReLU(0.2),
                                     _conv(ndim, features, features, bias=False))
        self.down = _conv(ndim, features, features, stride=2, bias=False)
        self.code_encoder = nn.Sequential(_conv(ndim, 1, 2 * channels, bias=False), nn.ReLU())
        self.blocks = nn.ModuleList(ResidualCSAIN(ndim, features, 2 * channels) for _ in range(blocks))
        self.head = nn.Sequential(_conv(ndim, 2 * features, features, bias=False), nn.LeakyReLU(0.2),
                                  _conv(ndim, features, ndim, bias=False), nn.Softsign())
        nn.init.normal_(self.head[2].weight, std=1e-5)

    def forward(self, x: torch.Tensor, code: torch.Tensor,
                coarser: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.encoder(x)
        e = self.down(skip)
        if coarser is not None:
            e = e + _resize(coarser, e.shape[2:])
        encoded = self.code_encoder(_resize(code, e.shape[2:]))
        for block in self.blocks:
            e = F.leaky_relu(block(e, encoded), 0.2)
        e = _resize(e, skip.shape[2:])
        return self.head(torch.cat([e, skip], dim=1)), e


class CSAINNet(nn.Module):
    """The coarse-to-fine network: per level, image pyramids and weight code maps in, the accumulated
    displacement (voxels of that level's grid) out."""

    def __init__(self, ndim: int, levels: int, channels: int, blocks: int, range_flow: float) -> None:
        super().__init__()
        self.ndim = ndim
        self.range_flow = range_flow
        self.levels = nn.ModuleList(CSAINLevel(ndim, 2 if k == 0 else 2 + ndim, channels, blocks)
                                    for k in range(levels))

    def forward(self, fixed: Sequence[torch.Tensor], moving: Sequence[torch.Tensor],
                codes: Sequence[torch.Tensor], upto: int) -> torch.Tensor:
        """The displacement of level ``upto`` (levels 0..upto run); inputs are lists over levels, coarse
        first, of (1, 1, *grid_k) images and code maps."""
        disp = features = None
        for k in range(upto + 1):
            shape = tuple(fixed[k].shape[2:])
            if disp is None:
                x = torch.cat([moving[k], fixed[k]], dim=1)
                base = torch.zeros((1, self.ndim, *shape), dtype=fixed[k].dtype, device=fixed[k].device)
            else:
                base = resize_disp(disp, shape)
                x = torch.cat([warp(moving[k], base, padding="border"), fixed[k], base], dim=1)
            output, features = self.levels[k](x, codes[k], features)
            scale = torch.tensor([self.range_flow * (n - 1) / 2 for n in shape], dtype=output.dtype,
                                 device=output.device)
            disp = base + output * scale.view(1, -1, *([1] * self.ndim))
        return disp


# The method ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Prepared:
    """A case as the network uses it: the normalised image per level (1, 1, *grid_k) and, for fixed images,
    its region memberships per level (1, R, *grid_k), soft where a coarser grid blurs region borders."""

    images: list[torch.Tensor]
    memberships: list[torch.Tensor]


@dataclass(frozen=True, eq=False)
class _Validation:
    """Validation pairs for tuning: (fixed, moving, fixed labels one-hot over ``classes`` (1, K, *spatial),
    moving labels (1, 1, *spatial)) each."""

    classes: list[int]
    pairs: list[tuple[_Prepared, _Prepared, torch.Tensor, torch.Tensor]]


class CSAINRegistration(NetworkMethod):
    """LapIRN-style network conditioned by CSAIN on a per-region regularisation weight map."""

    name = "csain"
    first_weight = "levels.0.encoder.0.weight"
    shape_settings = "levels/channels/blocks"
    Params = CSAINParams
    capabilities: ClassVar[Capabilities] = Capabilities()
    resources: ClassVar[Resources] = Resources(threads=2, mem_mb=2000, gpu=True, pair_seconds=2, train_minutes=3)
    params: CSAINParams
    net: CSAINNet | None

    def __init__(self, params: CSAINParams | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.tuned_weights: tuple[float, ...] | None = None

    # Building blocks -----------------------------------------------------------------------------------------

    def build(self, ndim: int) -> CSAINNet:
        """A fresh network for ``ndim``-D pairs (draws from torch's generator, seeded per call)."""
        p = self.params
        return CSAINNet(ndim, len(p.levels), p.channels, p.blocks, p.range_flow).to(self.device, self.dtype)

    def prepare(self, image: Image | torch.Tensor) -> _Prepared:
        """Normalise an image (or a (1, 1, *spatial) tensor of its intensities) to [0, 1], build the pyramid
        and the region memberships of each level."""
        full = normalise_intensity(image if isinstance(image, torch.Tensor) else self.to_tensor(image))
        regions = intensity_regions(full, self.params.regions, sigma=self.params.smoothing)
        onehot = one_hot(regions, range(self.params.regions)).to(self.dtype)
        return _Prepared([downsample_image(full, f) for f in self.params.levels],
                         [downsample_image(onehot, f) for f in self.params.levels])

    def weight_maps(self, fixed: _Prepared, weights: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(Lambda, code) per level from the weight vector (R,): Lambda(x) = sum_r p_r(x) lambda_r, and the
        network's input code(x) = sum_r p_r(x) log(lambda_r / lambda_min) / log(lambda_max / lambda_min)."""
        low, high = self.params.weight_range
        code = torch.log(weights / low) / math.log(high / low)
        return ([torch.einsum("br...,r->b...", p, weights)[:, None] for p in fixed.memberships],
                [torch.einsum("br...,r->b...", p, code)[:, None] for p in fixed.memberships])

    def field(self, net: CSAINNet, fixed: _Prepared, moving: _Prepared, weights: torch.Tensor,
              upto: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The displacement at level ``upto`` and the per-level Lambda maps."""
        lambdas, codes = self.weight_maps(fixed, weights)
        return net(fixed.images, moving.images, codes, upto), lambdas

    def registration_weights(self) -> tuple[float, ...]:
        """``weights`` if set, else the tuned weights, else the default ones."""
        if self.params.weights is not None:
            return self.params.weights
        return self.tuned_weights if self.tuned_weights is not None else self.params.default_weights

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network's parameters and, under ``regularisation_weights``, the weights chosen after training
        (the tuned ones, or the default ones where there was nothing to tune on)."""
        weights = self.tuned_weights or self.params.default_weights
        return {**super().state_dict(), WEIGHTS_KEY: torch.tensor(weights, dtype=torch.float64)}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        if WEIGHTS_KEY not in state:
            raise RegbenchError(f"csain: the state holds no {WEIGHTS_KEY}")
        weights = tuple(float(w) for w in state[WEIGHTS_KEY])
        if len(weights) != self.params.regions:
            raise RegbenchError(f"csain: the state's weights are for {len(weights)} regions, the configuration "
                                f"has regions={self.params.regions}")
        self.net = self.network_from_state({k: v for k, v in state.items() if k != WEIGHTS_KEY})
        self.tuned_weights = weights

    # Training ------------------------------------------------------------------------------------------------

    def fit(self, task: Task, pairs: Sequence[Pair], workdir: Path) -> None:
        """Train level by level (coarser levels frozen for ``freeze`` steps when a level starts, all of them
        trained after), then tune the weights on the validation pairs. Each training case is loaded and
        prepared once and kept in memory, so steps after the first visit of a pair do no IO."""
        training_pair = self.prepared_pairs(pairs, self.prepare, one_grid=False)
        self.net = self.new_network(task.ndim)
        self.loss_history = []
        low, high = self.params.weight_range
        for level, steps in enumerate(self.params.iterations):
            trained = [p for k in range(level + 1) for p in self.net.levels[k].parameters()]
            optimiser = torch.optim.Adam(trained, lr=self.params.lr)
            # validated at the finest level only: before it the network's output is not the registration
            monitor = TrainingMonitor(self, task, [optimiser], steps, validate=level == len(self.params.levels) - 1)
            for step in range(steps):
                for k in range(level):
                    self.net.levels[k].requires_grad_(step >= self.params.freeze)
                fixed, moving = training_pair(int(self.rng.integers(len(pairs))))
                weights = torch.tensor(np.exp(self.rng.uniform(math.log(low), math.log(high), self.params.regions)),
                                       dtype=self.dtype, device=self.device)
                optimiser.zero_grad()
                similarity, smoothness = self.losses(self.net, fixed, moving, weights, level)
                (similarity + smoothness).backward()
                optimiser.step()
                self.loss_history.append((level, (similarity + smoothness).item(), similarity.item(),
                                          smoothness.item()))
                monitor.step()
            monitor.finish(workdir)
        self.net.requires_grad_(True)
        self.write_loss_log(workdir, ("level", "loss", "similarity", "smoothness"))
        self.tune(task, workdir)

    def losses(self, net: CSAINNet, fixed: _Prepared, moving: _Prepared, weights: torch.Tensor,
               level: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(LNCC, weighted diffusion) of the field at ``level``, compared on that level's grid."""
        disp, lambdas = self.field(net, fixed, moving, weights, level)
        warped = warp(moving.images[level], disp, padding="border")
        ndim = disp.shape[1]
        return (lncc_loss(fixed.images[level], warped, window=self.params.window),
                diffusion_loss(disp, weight=lambdas[level]) / ndim**2)

    # Automatic hyperparameter optimisation -----------------------------------------------------------------

    def tune(self, task: Task, workdir: Path) -> None:
        """Coordinate search of the weight vector for the mean validation Dice (module docstring); writes
        every trial to ``workdir/tuned_weights.json`` and keeps the best in ``tuned_weights``."""
        record: dict[str, object] = {"regions": self.params.regions, "default": list(self.params.default_weights)}
        self.tuned_weights = None
        validation = self.validation_set(task) if self.params.tune else "tuning is switched off (tune: false)"
        if isinstance(validation, str):
            record["skipped"] = validation
            (workdir / TUNING_RECORD).write_text(json.dumps(record, indent=2))
            return
        trials: dict[tuple[float, ...], float] = {}

        def score(weights: tuple[float, ...]) -> float:
            if weights not in trials:
                trials[weights] = self.validation_dice(validation, weights)
            return trials[weights]

        low, high = self.params.weight_range
        grid = [float(v) for v in np.geomspace(low, high, self.params.tuning_grid)]
        best = self.params.default_weights
        for value in grid:  # max() keeps the first of equal scores: only improvements replace the best
            best = max(best, (value,) * self.params.regions, key=score)
        for _ in range(self.params.tuning_rounds):
            for r in range(self.params.regions):
                for value in grid:
                    best = max(best, (*best[:r], value, *best[r + 1:]), key=score)
        self.tuned_weights = best
        record.update(tuned=list(best), validation_pairs=len(validation.pairs),
                      validation_dice={"default": score(self.params.default_weights), "tuned": score(best)},
                      trials=[{"weights": list(w), "dice": d} for w, d in trials.items()])
        (workdir / TUNING_RECORD).write_text(json.dumps(record, indent=2))

    def validation_set(self, task: Task) -> _Validation | str:
        """The task's validation pairs, prepared, with their label maps; or why there is nothing to tune on."""
        classes = sorted(task.labels)
        pair_ids = task.pair_ids("val")
        if not pair_ids or not classes:
            return f"task {task.name!r} has no validation pairs or no labels"
        pairs = []
        for pair_id in pair_ids:
            pair = task.load_pair(pair_id, with_labels=True)
            if pair.fixed.labels is None or pair.moving.labels is None:
                return f"validation pair {pair_id.key} has no label maps"
            fixed, moving = (torch.as_tensor(c.labels.data.astype(np.int64), device=self.device)[None, None]
                             for c in (pair.fixed, pair.moving))
            pairs.append((self.prepare(pair.fixed.image), self.prepare(pair.moving.image),
                          one_hot(fixed, classes), moving))
        return _Validation(classes, pairs)

    def validation_dice(self, validation: _Validation, weights: tuple[float, ...]) -> float:
        """Mean over pairs of the mean Dice over labels, moving labels warped by nearest neighbour."""
        scores = []
        with torch.no_grad():
            for fixed, moving, fixed_onehot, moving_labels in validation.pairs:
                disp = self.full_field(fixed, moving, weights, tuple(fixed_onehot.shape[2:]))
                warped = one_hot(warp_labels(moving_labels, disp), validation.classes)
                scores.append(1 - soft_dice_loss(fixed_onehot, warped).item())
        return float(np.mean(scores))

    # Registration --------------------------------------------------------------------------------------------

    def full_field(self, fixed: _Prepared, moving: _Prepared, weights: Sequence[float], shape: Shape, *,
                   net: CSAINNet | None = None) -> torch.Tensor:
        """The field of ``net`` (default: the trained one) for ``weights``, on the full grid (1, ndim, *shape)."""
        weights_t = torch.tensor(weights, dtype=self.dtype, device=self.device)
        disp, _ = self.field(self.net if net is None else net, fixed, moving, weights_t, len(self.params.levels) - 1)
        return resize_disp(disp, shape)

    def estimate(self, pair: Pair) -> Displacement:
        return Displacement.from_torch(self.differentiable_forward(pair, self.to_tensor(pair.moving.image)))

    def differentiable_forward(self, pair: Pair, moving: torch.Tensor) -> torch.Tensor:
        """``estimate``'s displacement (1, ndim, *fixed grid) with the moving image given as a tensor (1, 1,
        *spatial) of ``pair.moving.image``'s intensities, differentiable in it (``regbench.robustness``). The
        instance fine-tuning runs on ``pair`` and is held constant."""
        self.network_for(pair)
        weights = self.registration_weights()
        with torch.no_grad():
            fixed, tuning = self.prepare(pair.fixed.image), self.prepare(pair.moving.image)
        net = self.fine_tuned(fixed, tuning, weights) if self.params.instance_iterations > 0 else self.net
        with torch.set_grad_enabled(moving.requires_grad):  # a graph only where a caller asks for gradients
            return self.full_field(fixed, self.prepare(moving), weights, pair.fixed.image.shape, net=net)

    def fine_tuned(self, fixed: _Prepared, moving: _Prepared, weights: Sequence[float]) -> CSAINNet:
        """A copy of the network fine-tuned on one pair (``instance_iterations`` Adam steps of the training
        objective at the finest level, at ``weights``); the trained network is left unchanged."""
        net = copy.deepcopy(self.net)
        optimiser = torch.optim.Adam(net.parameters(), lr=self.params.lr)
        weights_t = torch.tensor(weights, dtype=self.dtype, device=self.device)
        for _ in range(self.params.instance_iterations):
            optimiser.zero_grad()
            sum(self.losses(net, fixed, moving, weights_t, len(self.params.levels) - 1)).backward()
            optimiser.step()
        return net
