"""VoxelMorph: a U-Net that maps a (moving, fixed) pair to a displacement, trained without ground truth.

Balakrishnan et al., "VoxelMorph: a learning framework for deformable medical image registration", IEEE TMI
2019, doi:10.1109/TMI.2019.2897538; the diffeomorphic variant (a stationary velocity field integrated by
scaling and squaring) from Dalca et al., MICCAI 2018, doi:10.1007/978-3-030-00928-1_82.

Training minimises, over random training pairs drawn one at a time (batch size 1, as in the paper),

    L = L_sim(fixed, moving o phi) + lambda * L_smooth(u) [+ gamma * L_Dice(fixed labels, moving labels o phi)]

with L_sim local NCC (window 9) or MSE for images of one modality, and for multi-modal tasks the squared
difference of MIND-SSC descriptors (the moving descriptors are warped, not recomputed), chosen from the
training pairs' modalities unless set. L_smooth is VoxelMorph's diffusion term on the network output (the
velocity, for the diffeomorphic variant): the mean of squared finite differences over axes and components,
which is ``diffusion_loss / ndim**2``, so lambda means what it means in the paper. The Dice term makes it
the semi-supervised variant; it needs label maps of the training cases, which the method then asks for
(``capabilities.needs_labels``); use it only where the task allows training on labels.

Registration is one forward pass. Optionally (``instance_iterations``), a copy of the trained network is first
fine-tuned on the pair itself with the unsupervised objective (instance-specific optimisation, a common way
to trade runtime for accuracy in learning-based registration); off by default and in the paper preset, so
``voxelmorph`` measures what was learned.

Intensities are mapped to [0, 1] (``normalise_intensity``); samples beyond the moving image repeat its
border. Fixed and moving images must share one grid (the network sees them stacked as channels), as in every
Learn2Reg task. The paper's data were affinely pre-aligned (FreeSurfer); Learn2Reg's and ours are not always
(synthetic abdomen_mrct: mean Dice 0.565 unaligned, 0.74 after ``affine``), and a U-Net with a small receptive
field cannot learn a global affine map from a few subjects (trained on the unaligned abdomen_mrct pairs it
stayed at 0.563). So by default (``prealign``) each pair, in training and at registration, is first aligned by
``affine`` (one resampling of the moving image), the network registers the result, and the output is the
composition of the two fields.

Settings: the CPU default trains for 200 steps (2-3 minutes on 2 cores at the ~64^3 default scale), which
is far from converged: on default-scale brain_mr it lifts mean Dice from 0.70 (identity) to 0.73, while one
pair fitted for 150 steps reaches 0.83. Tried there at 200 steps: lr 1e-3 and 3e-3 alike, 1e-2 diverges;
LNCC window 5 or lambda 0.3 change Dice by under 0.02; MSE with lambda 0.01 falls below identity (0.66).
On default-scale abdomen_mrct (MR to CT, 6 training pairs, MIND): identity 0.565; without pre-alignment 0.563
(lambda 0.1: 0.564; with the Dice term, gamma 1: 0.571); with it 0.647, below the affine stage alone (0.718):
200 steps on six pairs do not teach the network a residual MR-CT deformation that helps.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from regbench.advchain import AdvChain
from regbench.cache import BoundedCache
from regbench.dataset import Task
from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.image import Image
from regbench.method import Capabilities, NetworkMethod, PaperCost, Resources, check_choice, similarity_by_modality
from regbench.methods.affine import AffineParams, affine_start
from regbench.methods.components.augmentation import (AugmentParams, augmented_moving, perturbed_image,
                                                     training_step_loss)
from regbench.methods.components.intensity import normalise_intensity
from regbench.methods.components.mind import mind_ssc
from regbench.methods.components.overlap import one_hot, soft_dice_loss
from regbench.methods.components.pyramid import downsample_image, resize_disp
from regbench.methods.components.regularisers import diffusion_loss
from regbench.methods.components.similarity import lncc_loss, mse_loss
from regbench.methods.components.unet import UNet
from regbench.pair import Case, CaseId, Pair, PairId
from regbench.progress import Progress
from regbench.training import TrainingMonitor
from regbench.spatial import compose, integrate_svf, warp

SIMILARITIES = ("auto", "lncc", "mse", "mind")
PROGRESS_EVERY = 50  # training steps between progress lines in the log (also one line at least every 30 s)


@dataclass(frozen=True)
class VoxelMorphParams(AugmentParams):
    """Hyperparameters of ``voxelmorph``.

    Attributes:
        encoder: U-Net channels per level, finest first (VoxelMorph: 16, 32, 32, 32).
        decoder: channels after each upsampling step, coarsest first (VoxelMorph: 32, 32, 32).
        final: extra convolutions at the finest level before the flow layer (vm1: 8, 8; vm2: 32, 16, 16).
        iterations: training steps, one random training pair each.
        lr: Adam learning rate (the paper: 1e-4).
        similarity: ``auto`` (LNCC for mono-modal, MIND for multi-modal training pairs) or lncc, mse, mind.
        window: LNCC window width in voxels (the paper: 9).
        smoothness: lambda, the weight of the diffusion term in VoxelMorph's convention (the paper's best:
            1 with NCC, 0.01 with MSE on [0, 1] intensities).
        dice_weight: gamma, the weight of the Dice term on training labels; 0 trains unsupervised, anything
            else makes the method semi-supervised (it then needs labels).
        diffeomorphic: predict a stationary velocity field and integrate it (VoxelMorph-diff).
        integration_steps: scaling-and-squaring steps of the diffeomorphic variant.
        mind_radius: MIND-SSC patch radius (voxels), for the ``mind`` similarity.
        mind_dilation: MIND-SSC neighbour distance (voxels).
        downsize: the network sees the pair on a grid this many times coarser (``downsample_image``),
            predicts the field there, and training compares the images there; the field is resampled to the
            full grid (``resize_disp``). 1 is the paper; 2, the CPU default, makes a step about 4 times
            cheaper on 64^3 volumes (convolutions at full resolution dominate the cost on a CPU).
        augment, augment_budget, augment_steps, augment_step: training-pair augmentation
            (``methods/components/augmentation.py``, ``AugmentParams``): ``none``, or the moving image on the
            network grid under an AdvChain drawn at ``random`` every step, or moved up the training loss first
            (``adversarial``); training labels of the Dice term move with the chain's geometry.
        instance_iterations: Adam steps fine-tuning a copy of the network on each pair at registration;
            0 registers with the trained network as it is.
        prealign: align each pair with ``affine`` first (module docstring).
        affine: settings of that affine stage (a mapping in config files); by default a single level at a
            quarter of the resolution, since training aligns every distinct training pair once.
    """

    encoder: tuple[int, ...] = (8, 16, 16, 16)
    decoder: tuple[int, ...] = (16, 16, 16)
    final: tuple[int, ...] = (16, 8)
    iterations: int = 200
    lr: float = 1e-3
    similarity: str = "auto"
    window: int = 9
    smoothness: float = 1.0
    dice_weight: float = 0.0
    diffeomorphic: bool = False
    integration_steps: int = 7
    mind_radius: int = 1
    mind_dilation: int = 2
    downsize: int = 2
    instance_iterations: int = 0
    prealign: bool = True
    affine: AffineParams = field(default_factory=lambda: AffineParams(factors=(4,), iterations=(100,)))

    def __post_init__(self) -> None:
        check_choice(self, "similarity", SIMILARITIES)
        super().__post_init__()
        if self.iterations < 1 or self.downsize < 1 or self.instance_iterations < 0:
            raise RegbenchError(f"{type(self).__name__}: need iterations >= 1, downsize >= 1 and "
                                f"instance_iterations >= 0, got {self.iterations}, {self.downsize} and "
                                f"{self.instance_iterations}")
        if self.smoothness < 0 or self.dice_weight < 0:
            raise RegbenchError(f"{type(self).__name__}: smoothness and dice_weight must be >= 0, "
                                f"got {self.smoothness} and {self.dice_weight}")

    @classmethod
    def paper(cls) -> VoxelMorphParams:
        """vm2 of the paper, trained as its public code trains by default (1500 epochs of 100 steps)."""
        return cls(encoder=(16, 32, 32, 32), decoder=(32, 32, 32), final=(32, 16, 16), iterations=150_000,
                   lr=1e-4, downsize=1, affine=AffineParams.paper())

    @classmethod
    def smoke(cls) -> VoxelMorphParams:
        """A tiny network and a few steps; 10 instance steps, so that smoke runs exercise fine-tuning too
        (and a network trained on a handful of pairs for seconds still registers a new pair sensibly)."""
        return cls(encoder=(4, 8, 8), decoder=(8, 8), final=(8,), iterations=30, lr=3e-3, window=5,
                   instance_iterations=10, affine=AffineParams.smoke(), validate_every=15, validation_pairs=1)


class VoxelMorph(NetworkMethod):
    """Unsupervised (or semi-supervised) learning of a registration network; one forward pass per pair."""

    name = "voxelmorph"
    first_weight = "encoder.0.0.weight"
    shape_settings = "encoder/decoder/final"
    Params = VoxelMorphParams
    capabilities: ClassVar[Capabilities] = Capabilities(multimodal=True)
    # paper: at OASIS size 58.8 CPU s a step (x 150,000) plus 146 s (the affine stage of the training pairs),
    # 156 s a pair, 10.6 GiB training (benchmarks/bench_real_sizes.py --preset paper)
    resources: ClassVar[Resources] = Resources(threads=2, mem_mb=4000, gpu=True, pair_seconds=2,
                                               train_minutes=4,
                                               paper=PaperCost(pair_cpu_s=156, train_cpu_h=2449, peak_mb=10834))
    params: VoxelMorphParams
    net: UNet | None

    def __init__(self, params: VoxelMorphParams | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        if self.params.dice_weight > 0:
            self.capabilities = dataclasses.replace(type(self).capabilities, needs_labels=True)

    # Network -------------------------------------------------------------------------------------------------

    def build(self, ndim: int) -> UNet:
        """A fresh network for ``ndim``-D pairs, its flow layer initialised near zero (the paper: N(0, 1e-5)),
        so training starts from about the identity. Draws from torch's generator, seeded per call."""
        net = UNet(ndim, 2, ndim, encoder=self.params.encoder, decoder=self.params.decoder,
                   final=self.params.final)
        nn.init.normal_(net.head.weight, std=1e-5)
        nn.init.zeros_(net.head.bias)
        return net.to(device=self.device, dtype=self.dtype)

    def network_grid(self, image: torch.Tensor) -> torch.Tensor:
        """An image (1, C, *spatial) on the grid the network works on (``downsize`` times coarser)."""
        return downsample_image(image, self.params.downsize)

    def network_input(self, image: Image | torch.Tensor, initial: torch.Tensor | None = None) -> torch.Tensor:
        """An image (or a (1, 1, *spatial) tensor of its intensities) as the network sees it: normalised to
        [0, 1], resampled through the displacement ``initial`` (1, ndim, *grid) if given, on the network grid,
        (1, 1, *grid)."""
        normalised = normalise_intensity(image if isinstance(image, torch.Tensor) else self.to_tensor(image))
        if initial is not None:
            normalised = warp(normalised, initial, padding="border")
        return self.network_grid(normalised)

    def field(self, net: UNet, fixed: torch.Tensor, moving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output of ``net``, displacement) for normalised images on the network grid, in voxels of that
        grid; they differ only for the diffeomorphic variant, where the output is a velocity."""
        output = net(torch.cat([moving, fixed], dim=1))
        if self.params.diffeomorphic:
            return output, integrate_svf(output, steps=self.params.integration_steps)
        return output, output


    # Training ------------------------------------------------------------------------------------------------

    def similarity_name(self, pair: Pair) -> str:
        """The configured similarity, or LNCC / MIND by the modalities of ``pair``."""
        return similarity_by_modality(self.params.similarity, pair, mono="lncc", multi="mind")

    def features(self, image: torch.Tensor, similarity: str) -> torch.Tensor:
        """What the similarity compares: the normalised image or its MIND-SSC descriptors."""
        if similarity != "mind":
            return image
        return mind_ssc(image, radius=self.params.mind_radius, dilation=self.params.mind_dilation)

    def dissimilarity(self, fixed: torch.Tensor, warped: torch.Tensor, similarity: str) -> torch.Tensor:
        if similarity == "lncc":
            return lncc_loss(fixed, warped, window=self.params.window)
        return mse_loss(fixed, warped)

    def fit(self, task: Task, pairs: Sequence[Pair], workdir: Path) -> None:
        """Adam on one random training pair per step; the loss of every step goes to ``workdir``.

        Each training pair is loaded and prepared (affinely aligned, normalised, resampled to the network's
        grid) on its first visit and kept in memory while it is among the most recently used
        (``regbench.cache``), so later steps on it do no IO and no affine registration.
        """
        classes = sorted(set(task.labels) - {0})
        if self.params.dice_weight > 0 and not classes:
            raise RegbenchError(f"voxelmorph: dice_weight > 0 needs labels, but task {task.name!r} defines none")
        first = pairs[0]
        similarity = self.similarity_name(first)
        fixed_cases: BoundedCache[CaseId, _Prepared] = BoundedCache()
        prepared: BoundedCache[int, tuple[_Prepared, _Prepared]] = BoundedCache()

        def prepare_pair(index: int) -> tuple[_Prepared, _Prepared]:
            pair = first if index == 0 else pairs[index]
            fixed = fixed_cases.get(pair.fixed.id, lambda: self.prepare(pair.fixed, classes, pair.id))
            return fixed, self.prepare(pair.moving, classes, pair.id, self.initial_alignment(pair))

        def training_pair(index: int) -> tuple[_Prepared, _Prepared]:
            return prepared.get(index, lambda: prepare_pair(index))

        self.net = self.new_network(first.ndim)
        optimiser = torch.optim.Adam(self.net.parameters(), lr=self.params.lr)
        monitor = TrainingMonitor(self, task, [optimiser], self.params.iterations)
        self.loss_history = []
        chain: AdvChain | None = None  # built once (training images share one grid), redrawn every step
        progress = Progress(self.params.iterations, what=f"train {self.name} on {task.name}", every=PROGRESS_EVERY)
        for _ in range(self.params.iterations):
            fixed, moving = training_pair(int(self.rng.integers(len(pairs))))
            if self.params.augmenting:
                chain = chain or self.params.chain(moving.image.shape[2:])
            optimiser.zero_grad()
            loss = training_step_loss(self.params, partial(self.training_loss, self.net, fixed, similarity=similarity),
                                      moving, partial(self.augmented, chain, fixed, moving, similarity))
            loss.backward()
            optimiser.step()
            self.loss_history.append(loss.item())
            progress.step(loss=self.loss_history[-1])
            monitor.step()
        monitor.finish(workdir)
        self.write_loss_log(workdir)

    def initial_alignment(self, pair: Pair) -> torch.Tensor | None:
        """The ``affine`` displacement (1, ndim, *grid) of the pair in voxels of its grid, or None without
        ``prealign``."""
        return affine_start(self, self.params.affine, pair) if self.params.prealign else None

    def prepare(self, case: Case, classes: Sequence[int], pair: PairId,
                initial: torch.Tensor | None = None) -> _Prepared:
        """A case as the network sees it: resampled through ``initial`` (a moving case's affine alignment) if
        given, normalised and on the network's grid, and for the Dice term its labels as soft one-hot maps of
        ``classes`` (resampled like images, so they stay differentiable under warping)."""
        image = self.network_input(case.image, initial)
        if self.params.dice_weight == 0:
            return _Prepared(image)
        if case.labels is None:
            raise RegbenchError(f"voxelmorph: dice_weight > 0 needs training labels; case {case.id} of pair "
                                f"{pair.key} has none")
        labels = torch.as_tensor(case.labels.data.astype(np.int64), device=self.device)[None, None]
        labels = one_hot(labels, classes).to(self.dtype)
        if initial is not None:
            labels = warp(labels, initial, padding="zeros")
        return _Prepared(image, self.network_grid(labels))

    def augmented(self, chain: AdvChain, fixed: _Prepared, moving: _Prepared, similarity: str) -> _Prepared:
        """The moving training case under ``chain`` redrawn at random, or for ``adversarial`` under that chain
        moved up the training loss (``augmented_moving``), its labels moved with it. The chain (on the moving
        grid) runs on the CPU in float64, its parameters drawn from the method's generator."""
        return augmented_moving(chain, moving, lambda case: self.training_loss(self.net, fixed, case, similarity),
                                self.rng, self.params, perturb=_perturbed)

    def training_loss(self, net: UNet, fixed: _Prepared, moving: _Prepared, similarity: str) -> torch.Tensor:
        """The VoxelMorph objective (module docstring) for one prepared pair and network ``net``."""
        output, disp = self.field(net, fixed.image, moving.image)
        with torch.no_grad():
            fixed_features = self.features(fixed.image, similarity)
        warped = warp(self.features(moving.image, similarity), disp, padding="border")
        ndim = disp.shape[1]
        loss = self.dissimilarity(fixed_features, warped, similarity) \
            + self.params.smoothness * diffusion_loss(output) / ndim**2
        if fixed.labels is not None and moving.labels is not None:
            warped_labels = warp(moving.labels, disp, padding="zeros")
            loss = loss + self.params.dice_weight * soft_dice_loss(fixed.labels, warped_labels)
        return loss

    # Registration --------------------------------------------------------------------------------------------

    def estimate(self, pair: Pair) -> Displacement:
        return Displacement.from_torch(self.differentiable_forward(pair, self.to_tensor(pair.moving.image)))

    def differentiable_forward(self, pair: Pair, moving: torch.Tensor) -> torch.Tensor:
        """``estimate``'s displacement (1, ndim, *fixed grid) with the moving image given as a tensor (1, 1,
        *spatial) of ``pair.moving.image``'s intensities, differentiable in it (``regbench.robustness``). The
        affine pre-alignment and the instance fine-tuning run on ``pair`` and are held constant."""
        self.network_for(pair)
        initial = self.initial_alignment(pair)
        with torch.no_grad():
            fixed = _Prepared(self.network_input(pair.fixed.image))
        net = self.net
        if self.params.instance_iterations > 0:
            with torch.no_grad():
                tuning = _Prepared(self.network_input(pair.moving.image, initial))
            net = self.fine_tuned(fixed, tuning, self.similarity_name(pair))
        with torch.set_grad_enabled(moving.requires_grad):  # a graph only where a caller asks for gradients
            _, disp = self.field(net, fixed.image, self.network_input(moving, initial))
            disp = resize_disp(disp, pair.fixed.image.shape)
            return disp if initial is None else compose(disp, initial)

    def fine_tuned(self, fixed: _Prepared, moving: _Prepared, similarity: str) -> UNet:
        """A copy of the network fine-tuned on one pair: ``instance_iterations`` Adam steps on the unsupervised
        objective (labels are never seen at registration). The trained network itself is left unchanged."""
        net = copy.deepcopy(self.net)
        optimiser = torch.optim.Adam(net.parameters(), lr=self.params.lr)
        for _ in range(self.params.instance_iterations):
            optimiser.zero_grad()
            self.training_loss(net, fixed, moving, similarity).backward()
            optimiser.step()
        return net


@dataclass(frozen=True, eq=False)
class _Prepared:
    """A training case as training uses it: the normalised image (1, 1, *grid) on the network grid and,
    for the Dice term, soft one-hot labels (1, K, *grid)."""

    image: torch.Tensor
    labels: torch.Tensor | None = None


def _perturbed(chain: AdvChain, case: _Prepared) -> _Prepared:
    """A prepared case under ``chain`` (on the chain's CPU float64 grid, back on the case's device and dtype);
    soft labels move with the chain's geometric part, so the Dice term stays true."""
    image = perturbed_image(chain, case.image)
    if case.labels is None:
        return _Prepared(image)
    labels = warp(case.labels.to("cpu", torch.float64), chain.geometric_disp(), padding="zeros")
    return _Prepared(image, labels.to(case.labels))
