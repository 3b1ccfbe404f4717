"""The differentiable hook of the four end-to-end networks returns exactly what ``register`` returns and
carries a gradient to the moving image; the surrogate error is the exact one where their definitions agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regbench.advchain import AdvChain
from regbench.displacement import Displacement
from regbench.registry import get_method
from regbench.robustness.gradient import Differentiable, surrogate_error
from regbench.robustness.scoring import score_perturbed

NETWORKS = ("voxelmorph", "gradirn", "vrnet", "csain")


@pytest.mark.filterwarnings("ignore:.*untrained network:RuntimeWarning")
@pytest.mark.parametrize("name", NETWORKS)
def test_differentiable_forward_is_register_with_a_gradient(name, synthetic_pair):
    pair, _ = synthetic_pair((16, 16), seed=3)
    method = get_method(name, scale="smoke", threads=1)
    assert isinstance(method, Differentiable)
    registered = method.register(pair).data
    moving = method.to_tensor(pair.moving.image).requires_grad_()
    disp = method.differentiable_forward(pair, moving)
    np.testing.assert_array_equal(np.moveaxis(disp[0].detach().numpy(), 0, -1), registered)
    (gradient,) = torch.autograd.grad(disp.square().sum(), moving)
    assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0


def test_classic_methods_are_not_differentiable():
    assert not isinstance(get_method("affine", scale="smoke"), Differentiable)


def test_surrogate_is_the_displacement_error_and_has_gradients(synthetic_pair):
    """With a true field the surrogate is the exact mean error (same definition, float64); its gradient
    reaches the geometric parameters through the composition with the chain."""
    pair, truth = synthetic_pair((20, 20), seed=2)
    chain = AdvChain.for_image(pair.moving.image, budget=0.5).randomise_(np.random.default_rng(1))
    disp = torch.as_tensor(np.random.default_rng(2).normal(0, 0.5, (1, 2, 20, 20)))
    surrogate = surrogate_error(pair, chain, disp, truth)
    exact = score_perturbed(pair, chain, Displacement.from_torch(disp), truth)
    assert surrogate.item() == pytest.approx(exact.error, rel=1e-5)
    surrogate.backward()
    assert chain.elastic.grad.abs().sum() > 0 and chain.rotation.grad.abs().sum() > 0


def test_soft_dice_surrogate_follows_one_minus_dice(synthetic_pair):
    pair, _ = synthetic_pair((24, 24), seed=2)
    chain = AdvChain.for_image(pair.moving.image, budget=0.5).randomise_(np.random.default_rng(1))
    surrogate = surrogate_error(pair, chain, torch.zeros((1, 2, 24, 24), dtype=torch.float64), None)
    exact = score_perturbed(pair, chain, Displacement.zeros((24, 24)), None)
    assert exact.error_metric == "1-DSC"
    assert surrogate.item() == pytest.approx(exact.error, abs=0.05)  # soft (linear) against nearest warping
