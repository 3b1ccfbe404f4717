"""Training-pair augmentation: the settings are checked and reach every learning method as plain top-level
hyperparameters; a random draw is reproducible and never asks for the loss; the adversarial draw is the random
one moved by signed-gradient steps up the loss, with only the chain's parameters moving; a training step minimises
the clean loss, the perturbed one (random) or their sum (adversarial, AdvChain's objective)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regbench.errors import RegbenchError
from regbench.methods.components.augmentation import (AugmentParams, augmented_moving, perturbed_image,
                                                     training_step_loss)
from regbench.registry import get_method

SHAPE = (12, 10)


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    """(fixed, moving) (1, 1, *SHAPE) float32: a smooth moving image and a shifted copy."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij"))
    moving = np.exp(-3 * (grid**2).sum(0)) + 0.2 * np.sin(3 * grid[1])
    fixed = np.roll(moving, 1, axis=0)
    return (torch.as_tensor(image, dtype=torch.float32)[None, None] for image in (fixed, moving))


def _loss_of_moving(weight: torch.nn.Parameter, fixed: torch.Tensor, calls: list[int]):
    """A stand-in for a method's training loss: the MSE of a one-weight 'network' output against ``fixed``."""
    def loss(moving: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return (weight * moving - fixed).square().mean()
    return loss


@pytest.mark.parametrize("name", ["voxelmorph", "gradirn", "vrnet"])
def test_every_learning_method_takes_the_settings_as_top_level_hyperparameters(name):
    method = get_method(name, scale="smoke", augment="adversarial", augment_budget=1, augment_steps=2)
    assert isinstance(method.params, AugmentParams) and method.params.augmenting
    assert (method.params.augment, method.params.augment_budget, method.params.augment_steps) == \
        ("adversarial", 1.0, 2)
    assert not get_method(name).params.augmenting  # off by default
    with pytest.raises(RegbenchError, match="augment must be one of"):
        get_method(name, augment="mixup")


def test_settings_are_checked():
    for bad in ({"augment_budget": 0.0}, {"augment_budget": 1.5}, {"augment_steps": 0}, {"augment_step": 0.0}):
        with pytest.raises(RegbenchError, match=r"AugmentParams: need 0 < augment_budget <= 1"):
            AugmentParams(augment="random", **bad)
    with pytest.raises(RegbenchError, match="augment must be one of none, random, adversarial, got 'mixup'"):
        AugmentParams(augment="mixup")
    chain = AugmentParams(augment_budget=0.25).chain(SHAPE)
    assert chain.shape == SHAPE and chain.budget == 0.25
    assert all((p == 0).all() for p in chain.parameters())  # the identity until drawn


def test_a_random_draw_is_reproducible_keeps_dtype_and_never_asks_for_the_loss():
    fixed, moving = _images()
    weight, calls = torch.nn.Parameter(torch.tensor(1.0)), []
    settings = AugmentParams(augment="random", augment_budget=0.5)
    chain = settings.chain(SHAPE)
    draws = [augmented_moving(chain, moving, _loss_of_moving(weight, fixed, calls), np.random.default_rng(3),
                              settings) for _ in range(2)]
    assert calls == []
    torch.testing.assert_close(draws[0], draws[1], rtol=0, atol=0)
    assert draws[0].dtype == torch.float32 and draws[0].shape == moving.shape and not draws[0].requires_grad
    assert (draws[0] - moving).abs().max() > 0.01
    other = augmented_moving(chain, moving, _loss_of_moving(weight, fixed, calls), np.random.default_rng(4),
                             settings)
    assert (other - draws[0]).abs().max() > 0.01
    # the chain is left at the draw it applied
    torch.testing.assert_close(perturbed_image(chain, moving), other, rtol=0, atol=0)


def test_the_adversarial_draw_is_the_random_one_moved_up_the_loss_by_signed_steps():
    fixed, moving = _images()
    weight, calls = torch.nn.Parameter(torch.tensor(1.0)), []
    loss = _loss_of_moving(weight, fixed, calls)
    random = AugmentParams(augment="random")
    chain = random.chain(SHAPE)
    start = augmented_moving(chain, moving, loss, np.random.default_rng(0), random)
    drawn = [p.detach().clone() for p in chain.parameters()]
    adversarial = AugmentParams(augment="adversarial", augment_steps=1, augment_step=0.05)
    with torch.no_grad():  # as where a caller scores without gradients
        stepped = augmented_moving(chain, moving, loss, np.random.default_rng(0), adversarial)
    assert calls == [1] and weight.grad is None and weight.item() == 1.0
    moved = torch.cat([(after - before).abs().flatten() for after, before in zip(chain.parameters(), drawn)])
    # one step of 0.05 per unconstrained value (none only where the gradient is exactly 0)
    assert torch.all(((moved - 0.05).abs() < 1e-12) | (moved == 0)) and (moved > 0).double().mean() > 0.9
    with torch.no_grad():
        assert loss(stepped) > loss(start)
    three = AugmentParams(augment="adversarial", augment_steps=3, augment_step=0.05)
    calls.clear()
    further = augmented_moving(chain, moving, loss, np.random.default_rng(0), three)
    assert calls == [1, 1, 1]
    with torch.no_grad():
        assert loss(further) > loss(stepped)


def test_a_custom_perturbation_carries_what_the_moving_case_holds():
    fixed, moving = _images()
    weight, calls = torch.nn.Parameter(torch.tensor(1.0)), []
    image_loss = _loss_of_moving(weight, fixed, calls)

    def perturb(chain, case):
        image, tag = case
        return perturbed_image(chain, image), tag

    settings = AugmentParams(augment="adversarial")
    chain = settings.chain(SHAPE)
    image, tag = augmented_moving(chain, (moving, "labels"), lambda case: image_loss(case[0]),
                                  np.random.default_rng(1), settings, perturb=perturb)
    assert tag == "labels" and calls == [1]
    torch.testing.assert_close(image, perturbed_image(chain, moving), rtol=0, atol=0)


@pytest.mark.parametrize("augment", ["none", "random", "adversarial"])
def test_a_training_step_keeps_the_clean_loss_beside_the_adversarial_one(augment):
    fixed, moving = _images()
    weight, calls = torch.nn.Parameter(torch.tensor(0.5)), []
    loss = _loss_of_moving(weight, fixed, calls)
    settings = AugmentParams(augment=augment)
    chain, order = settings.chain(SHAPE), []

    def augment_moving() -> torch.Tensor:
        order.append("augment")
        return augmented_moving(chain, moving, loss, np.random.default_rng(0), settings)

    step = training_step_loss(settings, lambda image: order.append("loss") or loss(image), moving, augment_moving)
    with torch.no_grad():
        clean, perturbed = loss(moving), loss(perturbed_image(chain, moving))
    expected = {"none": clean, "random": perturbed, "adversarial": clean + perturbed}[augment]
    torch.testing.assert_close(step.detach(), expected)
    assert order == {"none": ["loss"], "random": ["augment", "loss"],
                     "adversarial": ["augment", "loss", "loss"]}[augment]
    step.backward()
    assert weight.grad is not None and weight.grad != 0  # the network learns from the step's loss
