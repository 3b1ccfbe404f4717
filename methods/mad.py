"""MAD: affine registration with a Modality Agnostic Distance learned from one modality only.

Sideri-Lampretsa et al., "MAD: Modality Agnostic Distance Measure for Image Registration", 2023
(arXiv:2309.02875; title and id from memory, not from a stored copy: verify before citing). Only the abstract
could be read: a deep distance, trained on one modality made into endlessly many by random convolutions,
registers multi-modal pairs affinely with a larger capture range than MI and NGF. The network, target,
training and settings here are our design on that idea (``methods/components/mad_distance.py`` has the parts):

- **Training (``fit``), mono-modal.** Only one side of the training pairs is read (``train_on``: the moving
  images, the CT of ``abdomen_mrct``); the other modality is never seen. A step takes ``batch`` of them at one
  pyramid level (levels alternate), moves a copy of each by a random affine map T and the other by a random
  sub-voxel shift (else only the warped copy is interpolated and blur becomes a cue for misalignment: with
  the shift, the contract's 3D Dice margins over identity for seeds 0-5 went from -0.037..+0.032, mean
  +0.015, to -0.004..+0.058, mean +0.022, at otherwise equal smoke settings), cuts the same patch from both,
  and gives each copy a random appearance (``random_convolution``) with some probability, and noise.
  ``MADNet`` learns by mean squared error to predict T's displacement (voxels of the level; the warped copy
  samples the other at x + u(x)) and its length, on a grid 4 times coarser.
- **The distance** (``mad_loss``) is the mean predicted length, over both orders of the pair: least at
  alignment, growing with misalignment, differentiable in the warped image.
- **Registration** is ``affine`` itself (this class inherits it) with MAD as its loss: the same Adam on
  [A | t], pyramid and log-scaling prior, so ``mad`` and ``affine`` with ``similarity: mi`` or ``ngf`` differ
  in the distance and the prior's weight alone (``scale_prior``: the losses have different units).

Choices, and what they were measured against (default-scale ``abdomen_mrct`` unless said; a shared 2-core
machine, so read times as upper bounds):

- The target. Regressing the length alone (the first design) left the prediction flat at the mean length
  after 1000 steps. Regressing the vector trains: it tells the network which way to look. But where a pair
  does not tell (flat regions, a shift along the repeating spine), the best vector guess is 0, which would
  read as "aligned"; the best length guess is the mean length, which does not. So both are predicted and the
  distance uses the length.
- The curriculum. With random appearances from the first step, the regression error stayed at 99 % of the
  zero prediction's after 600 steps; with the chance of a random appearance rising from 0 over the first
  ``curriculum`` fraction, the network learns geometry first and appearance invariance after (84 %).
- ``appearance_chance`` below 1: on 2D blob phantoms, two of two seeds learned a usable distance in 800
  steps with 0.75, one of two with 1.
- Ranges. ``max_*`` bound the maps of the coarsest level and so the misalignment MAD is trained to see; each
  finer level trains on ranges shrunk by its factor ratio (``training_batch``).
- Texture and the scaling prior (issue #7). Proxy: train once at 2 threads, register the benchmark's 2 test
  pairs from the unperturbed start, mean displacement error; one training run per row, so differences of about
  1 mm are within seed noise. Kernel sizes (1,) 21.0 mm; (1, 3) 16.4. The error was the distance's, not the
  optimiser's: at MAD's result its value (factor 2) was below that at MI's and NGF's (1.12 against 1.25 and
  1.27 on pair 0010), and that result shrank one axis by 19 % (singular values 1.00, 0.98, 0.81; NGF 1.02,
  0.99, 0.94): MAD, a length in voxels, changes little with scaling and shear near alignment, where affine's
  prior at weight 1 is too weak to hold them. ``scale_prior`` 10: 12.4 mm (50: 13.0). Tried and dropped:
  a smooth multiplicative bias field on the random appearances (17.7 mm at prior 1); the mean squared length
  (21.4), the length of the predicted vector (16.4) or the sum of both (18.1) as the distance; shears in the
  training maps (11.3 mm at prior 10, but the smoke preset's 3D contract margins fell to -0.084..+0.011);
  3000 steps (no gain at 1.75 times the time).

Settings: the CPU default trains 2000 steps of 16 patches of 16^3 voxels at factors 4 and 2 (5 minutes on one
thread of the shared machine; 470 MB; 6.4-7.7 CPU minutes on the 3D tasks with the eight validations, which keep
the best state: ``MADParams``). The figures below were measured on the last state. What it reaches
(``benchmarks/bench_mad_capture_range.py --threads 1``, 2 test pairs of default-scale ``abdomen_mrct``): 11.0 mm
mean displacement error from the unperturbed start (Dice 0.708), against 9.6 (MI, 0.731) and 8.1 (NGF, 0.755) with
the same optimiser (before the two choices above: 21.0 mm, 0.628). Within the 12 mm success bar: both pairs at 0,
30 mm and 40 degrees, one of two at 20 degrees and 60 mm, none at 90 mm or 60 degrees. Held within 4 mm of its own
start (captured): both pairs up to 90 mm of added translation and 40 degrees of rotation, none at 60 degrees; MI
both to 60 mm and 40 degrees, one of two at 90 mm and 60 degrees; NGF both to 90 mm and 40 degrees, none at 60
degrees. So MAD's capture range matches NGF's and exceeds MI's in translation but not in rotation, and it is less
accurate than both: the larger capture range the abstract reports is not reproduced at this training budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from regbench.dataset import Task
from regbench.errors import RegbenchError
from regbench.image import Image
from regbench.method import Capabilities, NetworkMethod, PaperCost, Resources, check_choice, pair_id_at
from regbench.methods.affine import Affine, affine_disp, physical_span
from regbench.methods.components.intensity import normalise_intensity
from regbench.methods.components.mad_distance import MADNet, mad_loss, random_convolution
from regbench.methods.components.pyramid import check_pyramid, image_pyramid
from regbench.pair import CaseId, Pair
from regbench.spatial import warp
from regbench.training import TrainingMonitor, TrainingParams

SIDES = ("moving", "fixed")


@dataclass(frozen=True)
class MADParams(TrainingParams):
    """Hyperparameters of ``mad`` (none is from the paper, whose settings we could not read).

    Training follows a cosine schedule of ``train_lr`` and, every ``validate_every`` steps, registers the first
    ``validation_pairs`` validation pairs with the distance as it stands and keeps the best state
    (``regbench.training``): each validation is an affine registration per pair, so it runs less often than a
    network's forward pass would allow.

    Attributes:
        stem: ``MADNet``'s siamese stem width.
        channels: ``MADNet`` width per level.
        train_on: which images of the training pairs MAD learns from (``moving`` or ``fixed``): one modality.
        max_images: training images held in memory at most (the first ones of the training pairs): all of a
            CPU-sized task, a bounded share of a real one with thousands.
        steps: training steps.
        batch: patches per step.
        patch: side of the training patches, in voxels of the pyramid level (levels smaller are used whole).
        train_lr: Adam learning rate of the network.
        curriculum: fraction of training over which the chance that a copy gets a random appearance rises
            from 0 to ``appearance_chance``.
        appearance_chance: that chance after the curriculum. Below 1, some pairs keep the training modality
            on one side, as registration does on its moving side when it trains on the moving images.
        conv_layers: random convolutions per appearance (``random_convolution``'s ``layers``).
        conv_channels: their width.
        kernel_sizes: the kernel sizes they draw from; 1 alone makes random intensity maps, 3 adds texture.
        noise: largest standard deviation of the noise added to each appearance ([0, 1] intensities).
        max_rotation_deg: largest rotation of the training maps, per plane.
        max_scaling: largest log-scaling per axis.
        max_translation: largest shift per axis, as a fraction of E (half the image's largest extent).
        factors: pyramid levels of training and registration, coarse to fine (downsampling factors).
        iterations: Adam steps per level of the affine optimisation.
        lr: its learning rate, in the normalised units of ``affine``.
        scale_prior: weight of ``affine``'s log-scaling prior; 10 times ``affine``'s, as MAD (in voxels of
            predicted length) changes little with scaling and shear near alignment (module docstring).
    """

    stem: int = 8
    channels: tuple[int, ...] = (16, 32, 32)
    train_on: str = "moving"
    max_images: int = 64
    steps: int = 2000
    batch: int = 16
    patch: int = 16
    train_lr: float = 3e-3
    curriculum: float = 0.5
    appearance_chance: float = 0.75
    conv_layers: int = 2
    conv_channels: int = 8
    kernel_sizes: tuple[int, ...] = (1, 3)
    noise: float = 0.05
    max_rotation_deg: float = 40.0
    max_scaling: float = 0.1
    max_translation: float = 0.4
    factors: tuple[int, ...] = (4, 2)
    iterations: tuple[int, ...] = (100, 50)
    lr: float = 0.01
    scale_prior: float = 10.0
    lr_schedule: str = "cosine"
    validate_every: int = 250

    def __post_init__(self) -> None:
        super().__post_init__()
        check_pyramid(self, self.factors, self.iterations)
        check_choice(self, "train_on", SIDES)
        if self.steps < 1 or self.batch < 1 or self.patch < 4:
            raise RegbenchError(f"{type(self).__name__}: need steps >= 1, batch >= 1 and patch >= 4, got "
                                f"{self.steps}, {self.batch} and {self.patch}")
        if not (0 <= self.curriculum <= 1 and 0 <= self.appearance_chance <= 1):
            raise RegbenchError(f"{type(self).__name__}: curriculum and appearance_chance must lie in [0, 1], "
                                f"got {self.curriculum} and {self.appearance_chance}")

    @classmethod
    def paper(cls) -> MADParams:
        """Longer training with texture-changing random convolutions too (our choice; the paper's settings
        are unknown), and a full-resolution last level."""
        return cls(channels=(32, 64, 64), steps=20_000, batch=8, patch=32, kernel_sizes=(1, 3),
                   factors=(4, 2, 1), iterations=(200, 100, 50))

    @classmethod
    def smoke(cls) -> MADParams:
        """The least that still trains a useful distance in seconds, for the contract's tiny mono-modal task:
        a small network at half resolution, 300 steps, one copy in eight (on average) with a random
        appearance. Ranges match that task's misalignment (2-4 voxels; at smaller ones the 3D network learned
        too little in 300 steps), and a small ``lr`` keeps Adam, which takes full steps along any consistent
        slope, from rotating far where the distance is nearly flat in rotation (the blobs sit in the middle
        of the image, where a rotation moves little). Measured on the contract's training task, seeds 0-5:
        Dice above identity by 0.068-0.108 (2D) and 0.007-0.051 (3D); with ``lr`` 0.01 and the earlier
        ranges (10 degrees, 0.1 E) at 100 steps at full resolution, three of six 3D seeds fell below it.
        ``kernel_sizes`` (1,) and ``scale_prior`` 1 are those it was measured with (the default's were chosen
        at default scale)."""
        return cls(stem=4, channels=(8, 16), steps=300, batch=8, patch=16, train_lr=0.01, curriculum=1.0,
                   appearance_chance=0.25, kernel_sizes=(1,), max_rotation_deg=30.0, max_scaling=0.1,
                   max_translation=0.3, factors=(2,), iterations=(60,), lr=0.003, scale_prior=1.0,
                   validate_every=100, validation_pairs=1)


def random_affine(ndim: int, *, rotation_deg: float, scaling: float, translation: float,
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A random [A | t] (ndim, ndim + 1) in ``affine``'s normalised coordinates, from torch's generator.

    A = expm(s (W + D)) with W skew-symmetric (uniform angles up to ``rotation_deg`` per plane) and D diagonal
    (uniform log-scalings up to ``scaling``); t uniform up to ``s * translation``. One magnitude s, uniform in
    [0, 1], scales the whole map, so that near-identity maps are as common as large ones.
    """
    magnitude = torch.rand((), dtype=dtype)
    upper = torch.triu_indices(ndim, ndim, 1)
    skew = torch.zeros(ndim, ndim, dtype=dtype)
    skew[upper[0], upper[1]] = (2 * torch.rand(upper.shape[1], dtype=dtype) - 1) * math.radians(rotation_deg)
    logs = (2 * torch.rand(ndim, dtype=dtype) - 1) * scaling
    linear = torch.linalg.matrix_exp(magnitude * (skew - skew.T + torch.diag(logs)))
    shift = (2 * torch.rand(ndim, 1, dtype=dtype) - 1) * translation * magnitude
    return torch.cat([linear, shift], 1)


class MAD(NetworkMethod, Affine):
    """``affine`` with a distance network, trained mono-modally on random appearances, as its loss.

    ``NetworkMethod`` gives it the one-network save and load; ``Affine`` the registration.
    """

    name = "mad"
    first_weight = "head.weight"
    shape_settings = "stem/channels"
    Params = MADParams
    capabilities: ClassVar[Capabilities] = Capabilities(multimodal=True)
    # paper (benchmarks/bench_real_sizes.py --preset paper): training 7.5 CPU s a step at OASIS size (x 20,000);
    # registration passed 10 minutes there, so it was measured on an eighth of the voxels (256 CPU s, 1.9 GiB)
    # and scaled by 8
    resources: ClassVar[Resources] = Resources(threads=2, mem_mb=2000, gpu=True, pair_seconds=10, train_minutes=10,
                                               paper=PaperCost(pair_cpu_s=2049, train_cpu_h=42, peak_mb=15820))
    params: MADParams
    net: MADNet | None

    # Network -------------------------------------------------------------------------------------------------

    def build(self, ndim: int) -> MADNet:
        """A fresh network for ``ndim``-D images (weights drawn from torch's generator, seeded per call), frozen:
        registration differentiates the distance in the warped image only, never in the weights (``fit``
        unfreezes it while it trains)."""
        net = MADNet(ndim, stem=self.params.stem, channels=self.params.channels)
        return net.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)

    def check_one_grid(self, pair: Pair) -> None:
        """Allow two grids: unlike the networks that see a pair stacked as channels, MAD compares the fixed
        image with the moving one warped onto the fixed grid, and ``affine`` maps between any two grids."""

    # Training ------------------------------------------------------------------------------------------------

    def fit(self, task: Task, pairs: Sequence[Pair], workdir: Path) -> None:
        """Train the distance network on the ``train_on`` images of ``pairs`` (module docstring), validating
        on the task's validation pairs (``MADParams``); the loss of every step goes to ``workdir``."""
        cases: dict[CaseId, Image] = {}
        for index in range(len(pairs)):  # ids first: images are read only for the cases kept
            if len(cases) == self.params.max_images:
                break
            if getattr(pair_id_at(pairs, index), self.params.train_on) not in cases:
                case = getattr(pairs[index], self.params.train_on)
                cases[case.id] = case.image
        shapes = {image.shape for image in cases.values()}
        if len(shapes) != 1:
            raise RegbenchError(f"mad: the training images of task {task.name!r} have different grids "
                                f"{sorted(shapes)}; MAD trains on images of one grid")
        stack = torch.cat([normalise_intensity(self.to_tensor(image)) for image in cases.values()])
        span = physical_span(next(iter(cases.values())))
        levels = image_pyramid(stack, self.params.factors)
        self.net = self.new_network(stack.ndim - 2).train().requires_grad_(True)
        optimiser = torch.optim.Adam(self.net.parameters(), lr=self.params.train_lr)
        monitor = TrainingMonitor(self, task, [optimiser], self.params.steps)
        self.loss_history = []
        for step in range(self.params.steps):
            index = step % len(levels)
            ramp = min(1.0, step / max(self.params.curriculum * self.params.steps, 1))
            chance = self.params.appearance_chance * ramp
            reach = self.params.factors[index] / self.params.factors[0]
            fixed, warped, target = self.training_batch(levels[index], span, chance, reach)
            optimiser.zero_grad()
            disp, length = self.net(fixed, warped)
            target = _pool(target, tuple(disp.shape[2:]))
            loss = F.mse_loss(disp, target) + F.mse_loss(length, target.square().sum(1, keepdim=True).sqrt())
            loss.backward()
            optimiser.step()
            self.loss_history.append(loss.item())
            self.net.eval().requires_grad_(False)  # a validation registers with the distance frozen, as ``register``
            monitor.step()
            self.net.train().requires_grad_(True)
        self.net.eval().requires_grad_(False)
        monitor.finish(workdir)
        self.write_loss_log(workdir)

    def training_batch(self, level: torch.Tensor, span: torch.Tensor, chance: float, reach: float
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fixed, warped, displacement) patches, (B, 1 | ndim, *patch), from random images of ``level``.

        A random affine map moves a copy of each image (content enters the patch from beyond it, as in an
        image), and a random sub-voxel shift (up to half a voxel per axis) the other, so that both are
        interpolated and blur tells nothing about alignment (the displacement is the map's minus the shift);
        the same patch is cut from both copies, and each gets a random appearance with probability
        ``chance`` (else keeps the training modality's) and noise. Appearances are drawn after the warp, on the
        patch only (several times cheaper; the same up to interpolation). The map's ranges are scaled by
        ``reach``: a finer level (factor f, the coarsest F) only resolves what the coarser ones left, so it
        trains on ranges f / F as large, the coarsest level's in voxels of its own grid.
        """
        params = self.params
        ndim = level.ndim - 2
        shape = tuple(level.shape[2:])
        images = level[torch.randint(len(level), (params.batch,))]
        disp = torch.cat([
            affine_disp(random_affine(ndim, rotation_deg=reach * params.max_rotation_deg,
                                      scaling=reach * params.max_scaling,
                                      translation=reach * params.max_translation),
                        shape, shape, fixed_span=span, moving_span=span, extent=float(span.max()) / 2).to(level)
            for _ in range(params.batch)])
        size = [min(params.patch, n) for n in shape]
        crops = [(i, slice(None), *[slice(s, s + p) for s, p in zip(_corner(shape, size), size)])
                 for i in range(params.batch)]
        shift = torch.rand(params.batch, ndim, *[1] * ndim, dtype=level.dtype, device=level.device) - 0.5
        with torch.no_grad():
            fixed = warp(images, shift.expand_as(disp), padding="border")
            warped = warp(images, disp, padding="border")
            fixed, warped, disp = (torch.stack([x[c] for c in crops]) for x in (fixed, warped, disp - shift))
            return self.appearance(fixed, chance), self.appearance(warped, chance), disp

    def appearance(self, images: torch.Tensor, chance: float) -> torch.Tensor:
        """Each image given a random appearance with probability ``chance``, plus noise of a random level."""
        out = torch.cat([
            random_convolution(image, layers=self.params.conv_layers, channels=self.params.conv_channels,
                               kernel_sizes=self.params.kernel_sizes) if torch.rand(()) < chance else image
            for image in images.split(1)])
        sigma = self.params.noise * torch.rand(len(out), *[1] * (out.ndim - 1), dtype=out.dtype)
        return out + sigma.to(out.device) * torch.randn_like(out)

    # Registration --------------------------------------------------------------------------------------------

    def similarity_name(self, pair: Pair) -> str:
        return "mad"

    def loss(self, pair: Pair) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """MAD with the trained network, in place of ``affine``'s similarity."""
        return partial(mad_loss, net=self.network_for(pair))


def _corner(shape: Sequence[int], size: Sequence[int]) -> list[int]:
    """A random start index per axis for a crop of ``size`` inside ``shape`` (torch's generator)."""
    return [int(torch.randint(n - s + 1, ())) for n, s in zip(shape, size)]


def _pool(disp: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The displacement averaged onto the network's coarse output grid."""
    pool = F.adaptive_avg_pool2d if disp.ndim == 4 else F.adaptive_avg_pool3d
    return pool(disp, shape)
