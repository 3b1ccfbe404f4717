"""GraDIRN: a registration network whose forward pass unrolls multi-resolution gradient descent.

Qiu, Hammernik, Qin, Chen and Rueckert, "Embedding gradient-based optimization in image registration
networks", MICCAI 2022, doi:10.1007/978-3-031-16446-0_6 (arXiv:2112.03915). Written from the paper's abstract
and a reading of the authors' code (github.com/qiuhuaqi/GraDIRN: ``core/networks.py``, ``core/sim_terms.py``,
``core/reg_terms.py``, ``models/gradirns.py``, ``conf/train/``).

The displacement u starts at zero on the coarsest pyramid level. At level l it takes K_l steps

    u <- u - tau_l * grad_u D(F, M o u) - R_theta_l([u, F, M o u])

where D is the dissimilarity summed over voxels (the component losses average, so their autograd gradient is
multiplied by the voxel count, as the reference does), its gradient is taken by autograd (with
``create_graph`` while training, so training differentiates through it), tau_l is a learned step size and
R_theta_l a plain CNN (no U-Net): ``layers`` 3x3(x3) convolutions of ``channels`` channels with LeakyReLU(0.2),
the last one without activation, on the concatenation of u, the fixed image and the warped moving image.
Both terms are evaluated at the current u, as in the reference. Every level has one (tau, R) pair applied
K_l times (shared weights within a level, the authors' default ``num_blocks = 1``); between levels u is
resampled to the next grid (``resize_disp``). Training minimises, on the finest level only,
D(F, M o u) + lambda * diffusion(u) (Adam, one random training pair per step).

Units: u is in voxels of each level's grid throughout, which is what the reference computes too (its
``warp_fn`` normalises the displacement to grid_sample's [-1, 1] inside, with 2 / n where align_corners=True
would need 2 / (n - 1), a 1/n slip not reproduced here; its between-level "upsample and multiply by 2" is the
voxel rescaling that ``resize_disp`` does exactly). So tau means what it means there and the output is a
Learn2Reg displacement once resampled to the full grid; no [-1, 1] coordinates occur in this file.

Similarity: SSD (``mse``) by default for pairs of one modality, as the authors' default; for multi-modal pairs
``auto`` takes the SSD of MIND-SSC descriptors (moving descriptors computed once per level and warped);
any loss of ``methods/components/similarity.py`` can drive the steps and the loss (global NCC is the
reference's other option, trained there with lambda 0.1 instead of 0.01).

Departures from the reference, for short CPU training: the last layer of each R starts near zero
(N(0, 1e-5), as VoxelMorph's flow layer), not Kaiming-random, so an untrained network is plain unrolled
gradient descent and training starts from it; images are normalised to [0, 1] by percentiles, not by the
pair's min/max; the pyramid blurs before resampling (``downsample_image``); batch size 1 instead of 10 (2D)
or 4 (3D); no mixed precision; the step size is not constrained to stay positive (neither is it there).
Fixed and moving images must share one grid (R sees them stacked), as in every Learn2Reg task.

Settings: the CPU default keeps the reference's three levels but one octave coarser, (8, 4, 2), with two steps
per level and a 4-layer, 16-channel R (16.6k parameters in 2D, 52k in 3D), trained for 200 steps at lr 1e-3:
about 11 CPU-seconds on default-scale cardiac_mr and 300 on brain_mr (3D convolutions on the CPU dominate; the
reference's full-resolution finest level costs twice as much per 3D step). On default-scale cardiac_mr, mean
test Dice goes from 0.45 (identity) and 0.60 (untrained: plain unrolled SSD descent) to 0.96 (factors
(4, 2, 1) and 300 steps: also 0.96; with 8 channels 0.89; global NCC with lambda 0.1: 0.94). On brain_mr:
0.70 (identity), 0.735 (untrained), 0.755 (trained).

Augmentation (``augment``, ``methods/components/augmentation.py``): the moving image of each training pair,
normalised and on the full grid, goes through an AdvChain drawn at random (or moved up the loss above:
``adversarial``) before its pyramid and features are computed, so every level sees the same perturbation.
Training then keeps the normalised full-grid image of every cached case besides its pyramid.

Pre-alignment (``prealign``, off by default): the reference's images were affinely aligned beforehand (OASIS,
UK Biobank); ours are not always (abdomen_mrct: mean validation Dice 0.642 unaligned, 0.713 after voxelmorph's
affine stage). With it each pair, in training and at registration, is first aligned by ``affine``, the moving
image resampled through that map onto the fixed grid, and the output is the network's field followed by the
affine one (voxelmorph's ``prealign``). The unrolled MIND descent starts from the aligned pair then; trained
on the unaligned abdomen_mrct pairs, gradirn's best validation Dice was 0.636 (step 400 of 1000).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from regbench.advchain import AdvChain
from regbench.dataset import Task
from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.image import Image
from regbench.method import Capabilities, NetworkMethod, PaperCost, Resources, check_choice, similarity_by_modality
from regbench.methods.affine import AffineParams, affine_start
from regbench.methods.components.augmentation import AugmentParams, augmented_moving, training_step_loss
from regbench.methods.components.intensity import normalise_intensity
from regbench.methods.components.mind import mind_ssc
from regbench.methods.components.pyramid import check_pyramid, image_pyramid, resize_disp
from regbench.methods.components.regularisers import diffusion_loss
from regbench.methods.components.similarity import lncc_loss, mi_loss, mse_loss, ncc_loss, ngf_loss
from regbench.methods.components.unet import ConvBlock
from regbench.pair import Pair
from regbench.spatial import compose, warp
from regbench.training import TrainingMonitor

SIMILARITIES = ("auto", "mse", "ncc", "lncc", "mi", "ngf", "mind")
Dissimilarity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class GraDIRNParams(AugmentParams):
    """Hyperparameters of ``gradirn``.

    Attributes:
        factors: pyramid levels as downsampling factors, coarse to fine (the reference: 3 levels, (4, 2, 1)).
            A finest factor above 1 runs the whole network, and the loss, on a coarser grid and resamples the
            result; the CPU default's 2 makes 3D steps about 8 times cheaper (module docstring).
        repeats: K_l, the unrolled steps per level, all with that level's shared weights (the reference's
            ``num_repeat``: 3, 3, 3).
        layers: convolutions in each regulariser R_theta, the last one included (the reference: 5).
        channels: width of R_theta (the reference: 32).
        step_size: tau_0; each level's tau starts at tau_0 / (sum K_l + 1), as the reference's
            ``scale_step_size`` (0.5).
        step_scale: tau is multiplied by this when applied, which scales its learning rate (``train_scale``: 10).
        similarity: D, for the steps and the loss: ``auto`` (``mse`` for one modality, ``mind`` for
            multi-modal training pairs) or mse (SSD), ncc (global), lncc, mi, ngf, mind (SSD of MIND-SSC).
        smoothness: lambda, the weight of the diffusion energy of the final field in the loss (the reference:
            0.01 with SSD, 0.1 with NCC).
        iterations: training steps, one random training pair each.
        lr: Adam learning rate (the reference: 1e-4).
        window: LNCC window width in voxels of each level, for ``lncc``.
        mind_radius: MIND-SSC patch radius (voxels), for ``mind``.
        mind_dilation: MIND-SSC neighbour distance (voxels).
        augment, augment_budget, augment_steps, augment_step: training-pair augmentation
            (``methods/components/augmentation.py``, ``AugmentParams``): ``none``, or the moving image
            (normalised, full grid, before the pyramid) under an AdvChain drawn at ``random`` every step, or
            moved ``augment_steps`` signed-gradient steps up the training loss first (``adversarial``).
        prealign: align each pair with ``affine`` first and register what it left, in training and at
            registration (module docstring); off by default, as the reference's images were pre-aligned.
        affine: settings of that affine stage (a mapping in config files), voxelmorph's.
    """

    factors: tuple[int, ...] = (8, 4, 2)
    repeats: tuple[int, ...] = (2, 2, 2)
    layers: int = 4
    channels: int = 16
    step_size: float = 0.5
    step_scale: float = 10.0
    similarity: str = "auto"
    smoothness: float = 0.01
    iterations: int = 200
    lr: float = 1e-3
    window: int = 5
    mind_radius: int = 1
    mind_dilation: int = 2
    prealign: bool = False
    affine: AffineParams = field(default_factory=lambda: AffineParams(factors=(4,), iterations=(100,)))

    def __post_init__(self) -> None:
        check_pyramid(self, self.factors, self.repeats)
        check_choice(self, "similarity", SIMILARITIES)
        super().__post_init__()
        if min(self.repeats) < 1 or self.layers < 2 or self.channels < 1 or self.iterations < 1:
            raise RegbenchError(f"{type(self).__name__}: need repeats >= 1, layers >= 2, channels >= 1 and "
                                f"iterations >= 1, got {self.repeats}, {self.layers}, {self.channels} and "
                                f"{self.iterations}")
        if self.smoothness < 0 or self.step_scale <= 0:
            raise RegbenchError(f"{type(self).__name__}: need smoothness >= 0 and step_scale > 0, "
                                f"got {self.smoothness} and {self.step_scale}")

    @classmethod
    def paper(cls) -> GraDIRNParams:
        """The reference's configuration; 500 epochs of the reference are 500 visits of every training pair,
        here 50,000 steps (500 x the 100 training pairs of paper-scale ``cardiac_mr``)."""
        return cls(factors=(4, 2, 1), repeats=(3, 3, 3), layers=5, channels=32, iterations=50_000, lr=1e-4,
                   affine=AffineParams.paper())

    @classmethod
    def smoke(cls) -> GraDIRNParams:
        """Two levels of one step each and a tiny regulariser: every code path, in seconds."""
        return cls(factors=(2, 1), repeats=(1, 1), layers=2, channels=4, iterations=30, lr=3e-3,
                   validate_every=15, validation_pairs=1, affine=AffineParams.smoke())


class Regulariser(nn.Sequential):
    """R_theta: (B, ndim + 2, *spatial) [u, F, M o u] -> (B, ndim, *spatial), the learned regularisation step.

    Hidden layers are Kaiming-initialised for LeakyReLU(0.2) (the reference's ``convNd(..., a=0.2)``); the
    last starts near zero, so R is about 0 before training (module docstring).
    """

    def __init__(self, ndim: int, *, channels: int, layers: int) -> None:
        widths = [ndim + 2] + [channels] * (layers - 1)
        blocks: list[nn.Module] = [ConvBlock(ndim, c_in, c_out) for c_in, c_out in zip(widths, widths[1:])]
        head = (nn.Conv2d if ndim == 2 else nn.Conv3d)(channels, ndim, kernel_size=3, padding=1)
        super().__init__(*blocks, head)
        for block in blocks:
            nn.init.kaiming_uniform_(block[0].weight, a=0.2)
        nn.init.normal_(head.weight, std=1e-5)
        nn.init.zeros_(head.bias)


@dataclass(frozen=True, eq=False)
class Level:
    """One pyramid level of a case: its normalised image (1, 1, *grid) and what D compares (the image itself,
    or its MIND-SSC descriptors (1, P, *grid))."""

    image: torch.Tensor
    features: torch.Tensor


def similarity_gradient(dissimilarity: Dissimilarity, fixed: Level, moving: Level, disp: torch.Tensor, *,
                        create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_u D, M o u): the gradient of the dissimilarity summed over voxels with respect to ``disp``
    (B, ndim, *grid), by autograd, and the warped moving features it was taken at.

    Autograd is switched on locally, so this works inside ``torch.no_grad()`` (registration), where the
    gradient comes back detached; with ``create_graph`` it stays differentiable for training.
    """
    with torch.enable_grad():
        if not disp.requires_grad:
            disp = disp.detach().requires_grad_()
        warped = warp(moving.features, disp, padding="border")
        energy = dissimilarity(fixed.features, warped) * disp[:, 0].numel()
        (grad,) = torch.autograd.grad(energy, disp, create_graph=create_graph)
    return grad, warped


class GraDIRNNet(nn.Module):
    """The unrolled network: one step size tau_l and one regulariser R_l per pyramid level, applied K_l times.

    Args:
        ndim: 2 or 3.
        repeats: K_l per level, coarse to fine.
        channels, layers: of each regulariser.
        step_size: initial tau of every level (before ``step_scale``).
        step_scale: tau is multiplied by this when applied.
    """

    def __init__(self, ndim: int, repeats: Sequence[int], *, channels: int, layers: int, step_size: float,
                 step_scale: float) -> None:
        super().__init__()
        self.ndim = ndim
        self.repeats = tuple(repeats)
        self.step_scale = step_scale
        self.tau = nn.Parameter(torch.full((len(self.repeats),), step_size))
        self.regularisers = nn.ModuleList(Regulariser(ndim, channels=channels, layers=layers) for _ in self.repeats)

    def step_size(self, level: int) -> torch.Tensor:
        """The step size applied at ``level``: tau_l times ``step_scale``."""
        return self.tau[level] * self.step_scale

    def step(self, level: int, fixed: Level, moving: Level, disp: torch.Tensor, dissimilarity: Dissimilarity, *,
             create_graph: bool) -> torch.Tensor:
        """One unrolled step at ``level``: u - tau * grad_u D - R([u, F, M o u]), both terms taken at u."""
        grad, warped = similarity_gradient(dissimilarity, fixed, moving, disp, create_graph=create_graph)
        if moving.features is not moving.image:
            warped = warp(moving.image, disp, padding="border")
        update = self.step_size(level) * grad + self.regularisers[level](torch.cat([disp, fixed.image, warped], 1))
        return disp - update

    def forward(self, fixed: Sequence[Level], moving: Sequence[Level], dissimilarity: Dissimilarity, *,
                create_graph: bool) -> list[torch.Tensor]:
        """The field after every unrolled step, each on its level's grid (voxels of that grid)."""
        if len(fixed) != len(self.repeats) or len(moving) != len(self.repeats):
            raise RegbenchError(f"gradirn: the network has {len(self.repeats)} levels, the pair "
                                f"{len(fixed)} and {len(moving)}")
        first = fixed[0].image
        disp = first.new_zeros((first.shape[0], self.ndim, *first.shape[2:]))
        fields = []
        for level, (f, m) in enumerate(zip(fixed, moving)):
            if level > 0:
                disp = resize_disp(disp, tuple(f.image.shape[2:]))
            for _ in range(self.repeats[level]):
                disp = self.step(level, f, m, disp, dissimilarity, create_graph=create_graph)
                fields.append(disp)
        return fields


class GraDIRN(NetworkMethod):
    """Learned unrolled gradient descent (module docstring); one forward pass per pair."""

    name = "gradirn"
    first_weight = "regularisers.0.0.0.weight"
    shape_settings = "factors/repeats/layers/channels"
    Params = GraDIRNParams
    capabilities: ClassVar[Capabilities] = Capabilities(multimodal=True)
    # paper (benchmarks/bench_real_sizes.py --preset paper): 57 CPU s a pair at OASIS size; training passed
    # 21.5 GiB there, so it was measured on an eighth of the voxels (21.2 CPU s a step, 4.2 GiB) and scaled by 8
    # (x 50,000 steps)
    resources: ClassVar[Resources] = Resources(threads=2, mem_mb=2000, gpu=True, pair_seconds=5, train_minutes=3,
                                               paper=PaperCost(pair_cpu_s=57, train_cpu_h=2356, peak_mb=34195))
    params: GraDIRNParams
    net: GraDIRNNet | None

    # Network -------------------------------------------------------------------------------------------------

    def build(self, ndim: int) -> GraDIRNNet:
        """A fresh network for ``ndim``-D pairs (draws from torch's generator, seeded per call)."""
        p = self.params
        net = GraDIRNNet(ndim, p.repeats, channels=p.channels, layers=p.layers,
                         step_size=p.step_size / (sum(p.repeats) + 1), step_scale=p.step_scale)
        return net.to(device=self.device, dtype=self.dtype)

    # Similarity ----------------------------------------------------------------------------------------------

    def similarity_name(self, pair: Pair) -> str:
        """The configured similarity, or SSD / MIND by the modalities of ``pair``."""
        return similarity_by_modality(self.params.similarity, pair, mono="mse", multi="mind")

    def dissimilarity(self, similarity: str) -> Dissimilarity:
        """D(fixed features, warped features) as a function; ``mind`` compares descriptors by their SSD."""
        if similarity == "lncc":
            return functools.partial(lncc_loss, window=self.params.window)
        return {"mse": mse_loss, "mind": mse_loss, "ncc": ncc_loss, "mi": mi_loss, "ngf": ngf_loss}[similarity]

    def pyramid(self, image: Image | torch.Tensor, similarity: str) -> list[Level]:
        """An image (or a (1, 1, *spatial) tensor of its intensities) as the network sees it: normalised to
        [0, 1], at every pyramid level, with its features."""
        return self.levels(self.normalised(image), similarity)

    def normalised(self, image: Image | torch.Tensor) -> torch.Tensor:
        """An image (or a (1, 1, *spatial) tensor of its intensities) normalised to [0, 1], on its own grid."""
        return normalise_intensity(image if isinstance(image, torch.Tensor) else self.to_tensor(image))

    def moving_input(self, image: Image | torch.Tensor, initial: torch.Tensor | None) -> torch.Tensor:
        """A moving image (or a (1, 1, *spatial) tensor of its intensities) normalised to [0, 1] and, given the
        affine start ``initial`` (1, ndim, *fixed grid), resampled through it onto the fixed grid."""
        normalised = self.normalised(image)
        return normalised if initial is None else warp(normalised, initial, padding="border")

    def initial_alignment(self, pair: Pair) -> torch.Tensor | None:
        """The affine start of ``pair`` (1, ndim, *fixed grid), or None without ``prealign``."""
        return affine_start(self, self.params.affine, pair) if self.params.prealign else None

    def levels(self, normalised: torch.Tensor, similarity: str) -> list[Level]:
        """A normalised image (1, 1, *spatial) at every pyramid level, with its features."""
        images = image_pyramid(normalised, self.params.factors)
        if similarity != "mind":
            return [Level(level, level) for level in images]
        radius, dilation = self.params.mind_radius, self.params.mind_dilation
        return [Level(level, mind_ssc(level, radius=radius, dilation=dilation)) for level in images]

    # Training ------------------------------------------------------------------------------------------------

    def training_loss(self, net: GraDIRNNet, fixed: Sequence[Level], moving: Sequence[Level],
                      similarity: str) -> torch.Tensor:
        """D + lambda * diffusion of the final field, on the finest level (the reference's loss)."""
        dissimilarity = self.dissimilarity(similarity)
        disp = net(fixed, moving, dissimilarity, create_graph=True)[-1]
        warped = warp(moving[-1].features, disp, padding="border")
        return dissimilarity(fixed[-1].features, warped) + self.params.smoothness * diffusion_loss(disp)

    def fit(self, task: Task, pairs: Sequence[Pair], workdir: Path) -> None:
        """Adam on one random training pair per step; the loss of every step goes to ``workdir``.

        Each training case is prepared (normalised, pyramid, features) once and kept in memory; with
        ``augment`` its normalised full-grid image too, which the chain perturbs before the moving pyramid is
        rebuilt for the step.
        """
        first = pairs[0]
        similarity = self.similarity_name(first)
        augmenting = self.params.augmenting

        def prepare(normalised: torch.Tensor) -> _TrainingCase:
            return _TrainingCase(self.levels(normalised, similarity), normalised if augmenting else None)

        def prepare_aligned(pair: Pair) -> _TrainingCase:
            return prepare(self.moving_input(pair.moving.image, self.initial_alignment(pair)))

        training_pair = self.prepared_pairs(pairs, lambda image: prepare(self.normalised(image)),
                                            moving=prepare_aligned if self.params.prealign else None)
        self.net = self.new_network(first.ndim)
        optimiser = torch.optim.Adam(self.net.parameters(), lr=self.params.lr)
        monitor = TrainingMonitor(self, task, [optimiser], self.params.iterations)
        self.loss_history = []
        chain: AdvChain | None = None  # built once (training images share one grid), redrawn every step
        for _ in range(self.params.iterations):
            fixed, moving = training_pair(int(self.rng.integers(len(pairs))))
            if moving.normalised is not None:
                chain = chain or self.params.chain(moving.normalised.shape[2:])
            optimiser.zero_grad()
            loss_of_moving = functools.partial(self.training_loss, self.net, fixed.levels, similarity=similarity)
            augment = functools.partial(self.augmented, chain, fixed.levels, moving.normalised, similarity)
            loss = training_step_loss(self.params, loss_of_moving, moving.levels, augment)
            loss.backward()
            optimiser.step()
            self.loss_history.append(loss.item())
            monitor.step()
        monitor.finish(workdir)
        self.write_loss_log(workdir)

    def augmented(self, chain: AdvChain, fixed: Sequence[Level], moving: torch.Tensor,
                  similarity: str) -> list[Level]:
        """The pyramid of the normalised moving training image (1, 1, *grid) under ``chain`` redrawn at random,
        or for ``adversarial`` under that chain moved up the training loss (``augmented_moving``); the chain
        runs on the CPU in float64, its parameters drawn from the method's generator."""
        perturbed = augmented_moving(
            chain, moving, lambda image: self.training_loss(self.net, fixed, self.levels(image, similarity),
                                                            similarity),
            self.rng, self.params)
        with torch.no_grad():
            return self.levels(perturbed, similarity)

    # Registration --------------------------------------------------------------------------------------------

    def unrolled(self, pair: Pair) -> tuple[list[torch.Tensor], list[Level], list[Level], torch.Tensor | None]:
        """(the field after every unrolled step, fixed pyramid, moving pyramid, affine start or None) for
        ``pair``, without training graphs; an untrained network is built (with a warning) if none is there."""
        self.network_for(pair)
        similarity = self.similarity_name(pair)
        initial = self.initial_alignment(pair)
        with torch.no_grad():
            fixed = self.pyramid(pair.fixed.image, similarity)
            moving = self.levels(self.moving_input(pair.moving.image, initial), similarity)
            fields = self.net(fixed, moving, self.dissimilarity(similarity), create_graph=False)
        return fields, fixed, moving, initial

    def estimate(self, pair: Pair) -> Displacement:
        fields, _, _, initial = self.unrolled(pair)
        return Displacement.from_torch(self.output_field(pair, fields[-1], initial))

    def differentiable_forward(self, pair: Pair, moving: torch.Tensor) -> torch.Tensor:
        """``estimate``'s displacement (1, ndim, *fixed grid) with the moving image given as a tensor (1, 1,
        *spatial) of ``pair.moving.image``'s intensities, differentiable in it through every unrolled step
        (``regbench.robustness``); the affine start runs on ``pair`` and is held constant."""
        self.network_for(pair)
        similarity = self.similarity_name(pair)
        initial = self.initial_alignment(pair)
        with torch.no_grad():
            fixed = self.pyramid(pair.fixed.image, similarity)
        fields = self.net(fixed, self.levels(self.moving_input(moving, initial), similarity),
                          self.dissimilarity(similarity), create_graph=True)
        return self.output_field(pair, fields[-1], initial)

    @staticmethod
    def output_field(pair: Pair, disp: torch.Tensor, initial: torch.Tensor | None) -> torch.Tensor:
        """The network's last field resampled to the fixed grid, followed by the affine start if there is one."""
        disp = resize_disp(disp, pair.fixed.image.shape)
        return disp if initial is None else compose(disp, initial)

    def step_energies(self, pair: Pair) -> np.ndarray:
        """D on the finest level before the first step and after every unrolled step (sum K_l + 1 values),
        each field resampled to that grid: the energy the network descends, as the reference's
        ``_log_energy``. Seeded and threaded like ``register``."""
        self._check_pair(pair, f"method {self.name!r} on pair {pair.id.key}")
        with self._session():
            fields, fixed, moving, _ = self.unrolled(pair)
            dissimilarity = self.dissimilarity(self.similarity_name(pair))
            grid = tuple(fixed[-1].image.shape[2:])
            with torch.no_grad():
                energies = [dissimilarity(fixed[-1].features, moving[-1].features)]
                for disp in fields:
                    warped = warp(moving[-1].features, resize_disp(disp, grid), padding="border")
                    energies.append(dissimilarity(fixed[-1].features, warped))
        return np.array([e.item() for e in energies])


@dataclass(frozen=True, eq=False)
class _TrainingCase:
    """A training case as ``fit`` keeps it: its pyramid and, when augmenting, its normalised image (1, 1, *grid)
    on the full grid, which the chain perturbs."""

    levels: list[Level]
    normalised: torch.Tensor | None = None
