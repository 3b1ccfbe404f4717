"""VR-Net: a variational registration network, unrolled by variable splitting, trained without ground truth.

Jia, Thorley, Chen, Qiu, Shen, Styles, Chang, Leonardis, de Marvao, O'Regan, Rueckert and Duan, "Learning a
model-driven variational network for deformable image registration", IEEE TMI 41(1):199-212, 2022,
doi:10.1109/TMI.2021.3108881. Written from the paper's abstract and a reading of the authors' architecture
code (github.com/xi-jia/Learning-a-Model-Driven-Variational-Network-for-Deformable-Image-Registration,
``L2Models.py``, ``L1Models.py``) and of their training code (github.com/xi-jia/LKU-Net, which the README
names as VR-Net's).

The variational problem min_u D(rho(u)) + R(u) is split with an auxiliary field v and a coupling weight theta,

    min_{u, v}  D(rho(u)) + theta / 2 * |u - v|^2 + R(v),     rho(u) = I_t + grad I . (u - u0),

where rho is the brightness-constancy residual linearised about the field u0 of the last warp, I the moving
image warped by u0, I_t = I - fixed and grad I its gradient in voxels (central differences, one-sided at the
border). Alternating the two sub-problems gives the three layers that the network cascades:

1. **warping layer**: I = moving o (id + u0) with the current field u0 (``regbench.spatial.warp``);
2. **generalised denoising layer** (the v-step, a denoising problem for the unknown R): a residual U-Net on
   the field alone, v = u + N(u) (the paper's "residual U-Net"; the network starts near N = 0, so an untrained
   cascade passes u on);
3. **intensity-consistency layer** (the u-step, point-wise in closed form, ``intensity_consistency``): for the
   L2 data term D = rho^2 / 2, u = v - rho(v) grad I / (|grad I|^2 + theta); for the L1 term D = |rho|
   (TV-L1 optical flow's thresholding step), u = v - grad I / theta * clip(theta rho(v) / |grad I|^2, -1, 1).

An initial U-Net maps (moving, fixed) to u0; then ``cascades`` times (the reference's ``cascade_warp``) the
moving image is re-warped and ``ic_steps`` (``cascade_ic``) denoising + IC pairs follow, each with its own
U-Net and its own learnable theta (kept positive as theta = exp(log theta); the reference's initial value is
1). ``cascades=0`` is the initial U-Net alone: the ablation of everything VR-Net adds.

Training (as the authors' LKU-Net code trains): Adam on one random training pair per step, minimising
L = L_sim(fixed, moving o (id + u)) + lambda * L_smooth(u) on the final field, with L_sim the MSE of [0, 1]
intensities (their default; local NCC optional) and L_smooth the mean squared forward difference of the
field in voxels over axes and components, i.e. ``diffusion_loss / ndim**2`` (as in ``voxelmorph``).

Units: the reference architecture already keeps the field in voxels (its warp divides by half the grid size)
but the LKU-Net training template works on grid_sample's [-1, 1] grid; here the field is in voxels of the
network grid throughout, which is what the closed-form IC step needs (its gradients are per voxel), and the
single conversion is ``resize_disp`` onto the fixed grid when ``downsize`` > 1. Departures from the reference:
the U-Nets are ``methods/components/unet.py`` (one convolution per level, LeakyReLU, max pooling, linear
upsampling) sized by ``encoder``/``decoder`` instead of two ReLU convolutions per level and transposed
convolutions; the denoiser is residual (see 2); samples beyond the moving image repeat its border (the
reference pads with zeros); intensities are percentile-normalised to [0, 1].
Images of one modality only (brightness constancy); fixed and moving must share one grid, as in every
Learn2Reg task.

Settings: the published cascade counts, widths and loss weights were not in the material read (the paper's
body was not available); ``paper()`` takes the reference code's defaults (one warp, one IC step, theta 1,
start channel 8) trained as the LKU-Net commands train (MSE, lambda 0.01, lr 1e-4). The CPU default keeps
theta 1, MSE and lambda 0.01 and runs two cascades of 8-16-channel U-Nets for 300 steps on a grid twice
coarser. Measured on the default-scale synthetic tasks (mean over the test pairs, seed 0; 2 shared cores):
cardiac_mr (2D, 128^2) Dice 0.449 -> 0.924 (seed 1: 0.893), HD95 6.6 -> 1.5 voxels, SDlogJ 0.06, 16 CPU
seconds of training; brain_mr (3D, 64 x 76 x 64) Dice 0.696 -> 0.780, HD95 2.15 -> 1.54, 380 CPU seconds
(1.25 a step: three 3D U-Nets). Against the initial U-Net trained alone (``cascades=0``, a third of the cost
per step) the cascade gains in 3D (brain_mr 0.725 after as many steps, 0.766 after as much time, 860 steps)
but not in 2D (cardiac_mr 0.929 / 0.840 for seeds 0 / 1 against the cascade's 0.924 / 0.893, and 0.938 /
0.906 after as much time, 750 steps). With a tenth of the training pairs the cascade keeps its
accuracy (cardiac_mr 0.928 / 0.912, brain_mr 0.774). Tried on cardiac_mr: the full grid (``downsize=1``)
0.881, where theta 0.1 raises HD95 and theta 0.01 folds (SDlogJ 1.0, 5 % of voxels), the point-wise step
then dominating the field; LNCC 0.940 (one seed); the L1 term 0.948 / 0.936, and 0.799 on brain_mr, better
than L2 on both tasks, but L2 stays the default as in the reference code.

Augmentation (``augment``, ``methods/components/augmentation.py``): the moving image of each training pair, as
the network sees it (normalised, on the network grid), goes through an AdvChain drawn at random, or moved up the
training loss above (``adversarial``), before the step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from regbench.advchain import AdvChain
from regbench.dataset import Task
from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.image import Image
from regbench.method import Capabilities, NetworkMethod, PaperCost, Resources, check_choice
from regbench.methods.components.augmentation import AugmentParams, augmented_moving, training_step_loss
from regbench.methods.components.intensity import normalise_intensity
from regbench.methods.components.pyramid import downsample_image, resize_disp
from regbench.methods.components.regularisers import diffusion_loss
from regbench.methods.components.similarity import lncc_loss, mse_loss
from regbench.methods.components.unet import UNet
from regbench.pair import Pair
from regbench.spatial import warp
from regbench.training import TrainingMonitor

DATA_TERMS = ("l2", "l1")
SIMILARITIES = ("mse", "lncc")
L1_EPS = 1e-5
"""Added to |grad I|^2 in the L1 step (as in the reference) so that flat regions do not divide by zero."""


def intensity_consistency(warped: torch.Tensor, fixed: torch.Tensor, v: torch.Tensor, u0: torch.Tensor,
                          theta: torch.Tensor | float, *, data_term: str = "l2") -> torch.Tensor:
    """The closed-form u-step of VR-Net: argmin_u D(rho(u)) + theta / 2 |u - v|^2, voxel by voxel.

    Args:
        warped: (B, 1, *spatial) moving image warped by ``u0``; its gradient linearises the warp.
        fixed: (B, 1, *spatial) fixed image.
        v: (B, ndim, *spatial) the denoised field (voxels).
        u0: (B, ndim, *spatial) the field ``warped`` was warped with (the linearisation point).
        theta: positive coupling weight (intensity^2 per voxel^2 for L2).
        data_term: ``l2`` (D = rho^2 / 2; Sherman-Morrison solves the ndim x ndim system point-wise) or ``l1``
            (D = |rho|, a soft-thresholding step as in TV-L1 optical flow).

    Returns:
        (B, ndim, *spatial) the field u. Where v already explains the images (rho(v) = 0) it returns v.
    """
    if warped.shape[1] != 1 or fixed.shape != warped.shape or v.shape != u0.shape or \
            v.shape[2:] != warped.shape[2:] or v.shape[1] != warped.ndim - 2:
        raise ValueError(f"intensity_consistency(): expected single-channel images (B, 1, *spatial) and fields "
                         f"(B, ndim, *spatial) on one grid, got {tuple(warped.shape)}, {tuple(fixed.shape)}, "
                         f"{tuple(v.shape)} and {tuple(u0.shape)}")
    _check_data_term("intensity_consistency()", data_term)
    grad = torch.cat(torch.gradient(warped, dim=tuple(range(2, warped.ndim))), dim=1)
    rho = warped - fixed + (grad * (v - u0)).sum(1, keepdim=True)
    grad_norm2 = grad.square().sum(1, keepdim=True)
    if data_term == "l2":
        return v - grad * rho / (grad_norm2 + theta)
    return v - grad / theta * torch.clamp(theta * rho / (grad_norm2 + L1_EPS), -1.0, 1.0)


def _check_data_term(where: str, data_term: str) -> None:
    if data_term not in DATA_TERMS:
        raise ValueError(f"{where}: data_term must be one of {', '.join(DATA_TERMS)}, got {data_term!r}")


class IntensityConsistency(nn.Module):
    """The IC layer: ``intensity_consistency`` with its own learnable theta = exp(log_theta) > 0."""

    def __init__(self, theta: float, data_term: str = "l2") -> None:
        super().__init__()
        _check_data_term("IntensityConsistency()", data_term)
        self.data_term = data_term
        self.log_theta = nn.Parameter(torch.tensor(math.log(theta)))

    @property
    def theta(self) -> torch.Tensor:
        return self.log_theta.exp()

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor, v: torch.Tensor,
                u0: torch.Tensor) -> torch.Tensor:
        return intensity_consistency(warped, fixed, v, u0, self.theta, data_term=self.data_term)

    def extra_repr(self) -> str:
        return f"data_term={self.data_term!r}, theta={self.theta.item():.4g}"


class VRNetwork(nn.Module):
    """Initial U-Net, then ``cascades`` x (warp, ``ic_steps`` x (denoise, IC)); fields in voxels.

    Args:
        ndim: 2 or 3.
        encoder, decoder, final: sizes of every U-Net (initial and denoisers alike, as in the reference).
        cascades: warping layers after the initial U-Net (0: the initial U-Net alone).
        ic_steps: denoising + IC pairs per warping layer.
        theta: initial coupling weight of every IC layer.
        data_term: ``l2`` or ``l1``.
    """

    def __init__(self, ndim: int, *, encoder: Sequence[int], decoder: Sequence[int], final: Sequence[int],
                 cascades: int, ic_steps: int, theta: float, data_term: str) -> None:
        super().__init__()
        self.ndim = ndim
        self.cascades, self.ic_steps = cascades, ic_steps

        def unet(in_channels: int) -> UNet:
            net = UNet(ndim, in_channels, ndim, encoder=encoder, decoder=decoder, final=final)
            nn.init.normal_(net.head.weight, std=1e-5)  # start near u0 = 0 and v = u (VoxelMorph's flow init)
            nn.init.zeros_(net.head.bias)
            return net

        self.initial = unet(2)
        self.denoisers = nn.ModuleList(unet(ndim) for _ in range(cascades * ic_steps))
        self.ic_layers = nn.ModuleList(IntensityConsistency(theta, data_term) for _ in range(cascades * ic_steps))

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """(B, 1, *spatial) normalised moving and fixed images -> (B, ndim, *spatial) displacement (voxels)."""
        u = u0 = self.initial_field(moving, fixed)
        for cascade in range(self.cascades):
            warped = warp(moving, u0, padding="border")
            for k in range(cascade * self.ic_steps, (cascade + 1) * self.ic_steps):
                v = u + self.denoisers[k](u)
                u = self.ic_layers[k](warped, fixed, v, u0)
            u0 = u
        return u

    def initial_field(self, moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """u0 of the initial U-Net alone (what the cascade starts from)."""
        return self.initial(torch.cat([moving, fixed], dim=1))


@dataclass(frozen=True)
class VRNetParams(AugmentParams):
    """Hyperparameters of ``vrnet``.

    Attributes:
        encoder: channels per U-Net level, finest first (the reference: c, 2c, 4c, 8c, 16c with start channel c).
        decoder: channels after each upsampling step, coarsest first.
        final: extra full-resolution convolutions before each U-Net's output layer.
        cascades: warping layers (the reference's ``cascade_warp``); 0 keeps only the initial U-Net.
        ic_steps: denoising + intensity-consistency pairs per warping layer (``cascade_ic``).
        theta: initial coupling weight theta of every IC layer (learned from there; the reference: 1), in
            intensity^2 per voxel^2 of images in [0, 1] for the L2 term.
        data_term: ``l2`` (the closed form of the squared residual) or ``l1`` (soft thresholding, TV-L1 style).
        iterations: training steps, one random training pair each.
        lr: Adam learning rate (the reference: 1e-4).
        similarity: training similarity, ``mse`` (the reference's default) or ``lncc``.
        window: LNCC window width in voxels.
        smoothness: lambda, weight of the mean squared forward difference of the final field (voxels).
        downsize: the network works on a grid this many times coarser (``downsample_image``) and its field is
            resampled to the full grid (``resize_disp``); 1 is the reference.
        augment, augment_budget, augment_steps, augment_step: training-pair augmentation
            (``methods/components/augmentation.py``, ``AugmentParams``): ``none``, or the moving image on the
            network grid under an AdvChain drawn at ``random`` every step, or moved ``augment_steps``
            signed-gradient steps up the training loss first (``adversarial``).
    """

    encoder: tuple[int, ...] = (8, 16, 16, 16)
    decoder: tuple[int, ...] = (16, 16, 16)
    final: tuple[int, ...] = (8,)
    cascades: int = 2
    ic_steps: int = 1
    theta: float = 1.0
    data_term: str = "l2"
    iterations: int = 300
    lr: float = 1e-3
    similarity: str = "mse"
    window: int = 9
    smoothness: float = 0.01
    downsize: int = 2

    def __post_init__(self) -> None:
        check_choice(self, "data_term", DATA_TERMS)
        check_choice(self, "similarity", SIMILARITIES)
        super().__post_init__()
        if self.cascades < 0 or self.ic_steps < 1 or self.iterations < 1 or self.downsize < 1:
            raise RegbenchError(f"{type(self).__name__}: need cascades >= 0, ic_steps >= 1, iterations >= 1 and "
                                f"downsize >= 1, got {self.cascades}, {self.ic_steps}, {self.iterations} and "
                                f"{self.downsize}")
        if self.theta <= 0 or self.smoothness < 0:
            raise RegbenchError(f"{type(self).__name__}: theta must be > 0 and smoothness >= 0, got {self.theta} "
                                f"and {self.smoothness}")

    @classmethod
    def paper(cls) -> VRNetParams:
        """The reference code's defaults (one warp, one IC step, theta 1, start channel c = 8) trained as the
        LKU-Net code trains (MSE, lambda 0.01, lr 1e-4, 320k steps); the paper's own counts were not read."""
        return cls(encoder=(8, 16, 32, 64, 128), decoder=(32, 16, 16, 16), final=(16,), cascades=1, ic_steps=1,
                   theta=1.0, iterations=320_000, lr=1e-4, smoothness=0.01, downsize=1)

    @classmethod
    def smoke(cls) -> VRNetParams:
        """Tiny U-Nets, one cascade, a few steps: every layer runs, in seconds. theta starts at 0.1, so that
        the IC layer does visible work before 30 steps have taught the U-Nets much (a higher learning rate
        instead diverges in 3D)."""
        return cls(encoder=(4, 8, 8), decoder=(8, 8), final=(), cascades=1, theta=0.1, iterations=30, lr=3e-3,
                   validate_every=15, validation_pairs=1)


class VRNet(NetworkMethod):
    """A cascade of warping, denoising and closed-form intensity-consistency layers; one forward pass per pair."""

    name = "vrnet"
    first_weight = "initial.encoder.0.0.weight"
    shape_settings = "encoder/decoder/final/cascades/ic_steps"
    Params = VRNetParams
    capabilities: ClassVar[Capabilities] = Capabilities(multimodal=False)
    # paper: at OASIS size 45.2 CPU s a step (x 320,000) plus 15 s, 14.9 s a pair, 8.7 GiB training
    # (benchmarks/bench_real_sizes.py --preset paper)
    resources: ClassVar[Resources] = Resources(threads=2, mem_mb=2000, gpu=True, pair_seconds=3, train_minutes=10,
                                               paper=PaperCost(pair_cpu_s=15, train_cpu_h=4018, peak_mb=8912))
    params: VRNetParams
    net: VRNetwork | None

    # Network -------------------------------------------------------------------------------------------------

    def build(self, ndim: int) -> VRNetwork:
        """A fresh network for ``ndim``-D pairs (draws from torch's generator, seeded per call)."""
        p = self.params
        net = VRNetwork(ndim, encoder=p.encoder, decoder=p.decoder, final=p.final, cascades=p.cascades,
                        ic_steps=p.ic_steps, theta=p.theta, data_term=p.data_term)
        return net.to(device=self.device, dtype=self.dtype)

    def network_input(self, image: Image | torch.Tensor) -> torch.Tensor:
        """An image (or a (1, 1, *spatial) tensor of its intensities) as the network sees it: normalised to
        [0, 1], on the network grid, (1, 1, *grid)."""
        tensor = image if isinstance(image, torch.Tensor) else self.to_tensor(image)
        return downsample_image(normalise_intensity(tensor), self.params.downsize)

    # Training ------------------------------------------------------------------------------------------------

    def training_loss(self, net: VRNetwork, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        """L_sim(fixed, moving o (id + u)) + lambda * L_smooth(u) for normalised images on the network grid."""
        disp = net(moving, fixed)
        warped = warp(moving, disp, padding="border")
        if self.params.similarity == "lncc":
            similarity = lncc_loss(fixed, warped, window=self.params.window)
        else:
            similarity = mse_loss(fixed, warped)
        return similarity + self.params.smoothness * diffusion_loss(disp) / disp.shape[1] ** 2

    def fit(self, task: Task, pairs: Sequence[Pair], workdir: Path) -> None:
        """Adam on one random training pair per step; the loss of every step goes to ``workdir``.

        Each training case is normalised and resampled to the network grid once and kept in memory.
        """
        training_pair = self.prepared_pairs(pairs, self.network_input)
        self.net = self.new_network(pairs[0].ndim)
        optimiser = torch.optim.Adam(self.net.parameters(), lr=self.params.lr)
        monitor = TrainingMonitor(self, task, [optimiser], self.params.iterations)
        self.loss_history = []
        chain: AdvChain | None = None  # built once (training images share one grid), redrawn every step
        for _ in range(self.params.iterations):
            fixed, moving = training_pair(int(self.rng.integers(len(pairs))))
            if self.params.augmenting:
                chain = chain or self.params.chain(moving.shape[2:])
            optimiser.zero_grad()
            loss = training_step_loss(self.params, partial(self.training_loss, self.net, fixed), moving,
                                      partial(self.augmented, chain, fixed, moving))
            loss.backward()
            optimiser.step()
            self.loss_history.append(loss.item())
            monitor.step()
        monitor.finish(workdir)
        self.write_loss_log(workdir)

    def augmented(self, chain: AdvChain, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        """The moving training image (1, 1, *network grid) under ``chain`` redrawn at random, or for
        ``adversarial`` under that chain moved up the training loss (``augmented_moving``); the chain runs on
        the CPU in float64, its parameters drawn from the method's generator."""
        return augmented_moving(chain, moving, lambda image: self.training_loss(self.net, fixed, image), self.rng,
                                self.params)

    # Registration --------------------------------------------------------------------------------------------

    def estimate(self, pair: Pair) -> Displacement:
        with torch.no_grad():
            return Displacement.from_torch(self.differentiable_forward(pair, self.to_tensor(pair.moving.image)))

    def differentiable_forward(self, pair: Pair, moving: torch.Tensor) -> torch.Tensor:
        """``estimate``'s displacement (1, ndim, *fixed grid) with the moving image given as a tensor (1, 1,
        *spatial) of ``pair.moving.image``'s intensities, differentiable in it (``regbench.robustness``)."""
        self.network_for(pair)
        with torch.no_grad():
            fixed = self.network_input(pair.fixed.image)
        return resize_disp(self.net(self.network_input(moving), fixed), pair.fixed.image.shape)
