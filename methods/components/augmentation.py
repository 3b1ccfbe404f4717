"""Random and adversarial augmentation of training pairs with AdvChain, shared by the learning methods.

Chen et al., "Enhancing MR image segmentation with realistic adversarial data augmentation", MedIA 2022,
doi:10.1016/j.media.2022.102597. A method's hyperparameters mix in ``AugmentParams``, which adds four plain
top-level settings (so ``overrides: {gradirn: {augment: adversarial}}`` reaches them like any other):

- ``augment``: ``none``; ``random``, the moving image of every training pair goes through an AdvChain
  (``regbench.advchain``) drawn uniformly within its bounds for that step; ``adversarial``, that draw is first
  moved ``augment_steps`` signed-gradient steps of ``augment_step`` (in the chain's unconstrained parameters)
  up the method's own training loss, AdvChain's inner maximisation, so the network trains on the perturbation
  that hurts it most nearby;
- ``augment_budget``: the chain's budget in (0, 1], the fraction of every bound (``ChainBounds``).

A step then minimises ``training_step_loss``: with ``random`` the loss on the perturbed pair alone (plain data
augmentation); with ``adversarial`` AdvChain's objective, the loss on the clean pair plus that on the adversarial
one (the paper's supervised loss + w x adversarial loss, w = 1), so that the network keeps learning the
unperturbed pairs it is scored on. Trained on the adversarial pair alone, as an earlier version was, voxelmorph
on cardiac_mr fell to a clean test Dice of 0.643 against 0.919 without augmentation (validation 0.687 at best).

Training builds one chain per run (``AugmentParams.chain``; training images share one grid) and every step
perturbs the moving image of the drawn pair by ``augmented_moving``. The inner maximisation differentiates the
loss with respect to the chain's parameters only: the network's weights get no gradient from it and the caller's
optimiser sees only the step's loss on the final perturbed pair (and the clean one). Draws come from the generator
passed in (the method's ``rng``), so a seeded run is reproducible. The chain runs on the CPU in float64, as
AdvChain does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from regbench.advchain import AdvChain
from regbench.errors import RegbenchError
from regbench.method import check_choice
from regbench.training import TrainingParams

AUGMENTATIONS = ("none", "random", "adversarial")

Moving = TypeVar("Moving")


@dataclass(frozen=True)
class AugmentParams(TrainingParams):
    """The augmentation settings a learning method's hyperparameters inherit (module docstring), with the
    training settings every network method shares (``TrainingParams``).

    A subclass that has a ``__post_init__`` of its own calls ``super().__post_init__()`` in it.

    Attributes:
        augment: ``none``, ``random`` or ``adversarial``.
        augment_budget: the chain's budget in (0, 1] (the fraction of every bound, ``ChainBounds``).
        augment_steps, augment_step: the inner maximisation of ``adversarial``: signed-gradient steps and their
            size in the unconstrained parameters (AdvChain: one step).
    """

    augment: str = "none"
    augment_budget: float = 0.5
    augment_steps: int = 1
    augment_step: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self, "augment", AUGMENTATIONS)
        if not 0 < self.augment_budget <= 1 or self.augment_steps < 1 or self.augment_step <= 0:
            raise RegbenchError(f"{type(self).__name__}: need 0 < augment_budget <= 1, augment_steps >= 1 and "
                                f"augment_step > 0, got {self.augment_budget}, {self.augment_steps} and "
                                f"{self.augment_step}")

    @property
    def augmenting(self) -> bool:
        """Whether training pairs are perturbed at all."""
        return self.augment != "none"

    def chain(self, shape: Sequence[int]) -> AdvChain:
        """A chain of the moving training grid ``shape`` at ``augment_budget`` (parameters at the identity)."""
        return AdvChain(tuple(shape), budget=self.augment_budget)


def perturbed_image(chain: AdvChain, image: torch.Tensor) -> torch.Tensor:
    """An image (1, 1, *chain.shape) under ``chain``: computed on the chain's CPU float64 grid and returned on the
    image's device and dtype; differentiable in the chain's parameters."""
    return chain.apply(image.to("cpu", torch.float64)).to(image)


def training_step_loss(settings: AugmentParams, loss_of_moving: Callable[[Moving], torch.Tensor], clean: Moving,
                       augment: Callable[[], Moving]) -> torch.Tensor:
    """The loss one training step minimises (module docstring): ``loss_of_moving`` of the ``clean`` moving image
    without augmentation; of ``augment()`` (the perturbed image, ``augmented_moving``) alone for ``random``; of
    both, summed, for ``adversarial``. ``augment`` is called before the clean loss, so a method's generator draws
    as it does without the clean term."""
    if not settings.augmenting:
        return loss_of_moving(clean)
    perturbed = loss_of_moving(augment())
    return perturbed + loss_of_moving(clean) if settings.augment == "adversarial" else perturbed


def augmented_moving(chain: AdvChain, moving: Moving, loss_of_moving: Callable[[Moving], torch.Tensor],
                     rng: np.random.Generator, settings: AugmentParams, *,
                     perturb: Callable[[AdvChain, Moving], Moving] | None = None) -> Moving:
    """The moving training image under ``chain`` redrawn from ``rng``, or for ``adversarial`` under that draw
    moved up ``loss_of_moving`` (module docstring). ``chain`` is left at the parameters used.

    Args:
        chain: the run's chain, on the moving image's grid; redrawn in place.
        moving: the moving image (1, 1, *grid) as the network sees it, or whatever ``perturb`` takes.
        loss_of_moving: the method's training loss of the pair with this moving image (differentiable in it);
            called only for ``adversarial``, with autograd on even where the caller has it off.
        rng: the generator of the draw (the method's ``rng``).
        settings: ``augment``, ``augment_steps`` and ``augment_step``.
        perturb: ``moving`` under a chain; default ``perturbed_image``. A method whose training cases carry
            more than the image (label maps that must move with the geometry) passes its own.

    Returns:
        ``perturb(chain, moving)`` computed without gradients.
    """
    apply: Callable[[AdvChain, Any], Any] = perturbed_image if perturb is None else perturb
    chain.randomise_(rng)
    if settings.augment == "adversarial":
        for _ in range(settings.augment_steps):
            with torch.enable_grad():  # also where the caller scores without gradients
                loss = loss_of_moving(apply(chain, moving))
                gradients = torch.autograd.grad(loss, list(chain.parameters()))
            with torch.no_grad():
                for parameter, gradient in zip(chain.parameters(), gradients):
                    parameter.add_(settings.augment_step * gradient.sign())
    with torch.no_grad():
        return apply(chain, moving)
