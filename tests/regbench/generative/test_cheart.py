"""The conditional cardiac model: shapes, the ablation that cannot see its conditions, training that lowers
the loss, and decoding that repeats for a seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regbench.generative.cheart import (CHeartNet, CHeartSettings, complete, condition_vector, generate,
                                        time_weights, train)
from regbench.tasks.cardiac_population import Covariates

SMALL = CHeartSettings(size=16, frames=4, latent=4, channels=(4, 8), hidden=16, steps=150, batch=8, lr=3e-3)
PEOPLE = [Covariates(30.0, 0, 115.0), Covariates(70.0, 1, 150.0)]


def _cycles(count: int, ndim: int = 2) -> np.ndarray:
    """Discs (balls in 3D; label 1) in a ring (shell; label 2) whose cavity shrinks and grows back over 4 frames,
    radius by subject, on 16^ndim grids."""
    grid = np.sqrt(sum(axis**2 for axis in np.mgrid[(slice(-8, 8),) * ndim] + 0.5))
    cycles = np.zeros((count, 4, *(16,) * ndim), np.uint8)
    for subject in range(count):
        for frame, scale in enumerate((1.0, 0.8, 0.7, 0.9)):
            cavity = (3.0 + subject % 3) * scale
            cycles[subject, frame][grid < cavity + 2] = 2
            cycles[subject, frame][grid < cavity] = 1
    return cycles


def test_condition_vector_centres_and_scales():
    np.testing.assert_allclose(condition_vector(PEOPLE).numpy(), [[-1.0, -1.0, -0.25], [1.0, 1.0, 1.5]])


def test_shapes_and_the_ablation_ignores_its_conditions():
    torch.manual_seed(0)
    first = torch.nn.functional.one_hot(torch.as_tensor(_cycles(2)[:, 0]).long(), 4).movedim(-1, 1).float()
    for conditioned in (True, False):
        net = CHeartNet(CHeartSettings(size=16, frames=4, latent=4, channels=(4, 8), conditioned=conditioned))
        mean, log_var = net.encode(first, condition_vector(PEOPLE))
        assert mean.shape == log_var.shape == (2, 4)
        logits = net.decode(mean, condition_vector(PEOPLE), 4)
        assert logits.shape == (2, 4, 4, 16, 16)
        swapped = net.decode(mean, condition_vector(PEOPLE[::-1]), 4)
        assert torch.equal(logits, swapped) != conditioned


def test_training_lowers_the_loss_and_repeats_for_a_seed():
    cycles = _cycles(12)
    people = [PEOPLE[i % 2] for i in range(12)]
    net, log = train(SMALL, cycles, people, seed=0)
    assert log.shape == (150, 3)
    assert log[-20:, 1].mean() < 0.5 * log[:20, 1].mean()  # cross-entropy
    _, again = train(SMALL, cycles, people, seed=0)
    np.testing.assert_array_equal(log, again)
    completed = complete(net, cycles[:, 0], people, 4)
    assert completed.shape == cycles.shape and completed.dtype == np.uint8
    assert (completed == cycles).mean() > 0.8
    np.testing.assert_array_equal(generate(net, people, 4, seed=1), generate(net, people, 4, seed=1))


def test_later_frames_weigh_more():
    weights = time_weights(5).numpy()
    assert weights[0] == 1.0 and weights[-1] == 2.0 and (np.diff(weights) > 0).all()


def test_the_3d_model_trains_on_volumes_and_completes_them():
    settings = CHeartSettings(**{**SMALL.as_dict(), "ndim": 3, "channels": (4, 8)})
    cycles = _cycles(12, ndim=3)
    people = [PEOPLE[i % 2] for i in range(12)]
    net, log = train(settings, cycles, people, seed=0)
    assert log[-20:, 1].mean() < 0.5 * log[:20, 1].mean()
    completed = complete(net, cycles[:, 0], people, 4)
    assert completed.shape == cycles.shape == (12, 4, 16, 16, 16)
    assert (completed == cycles).mean() > 0.8
    assert generate(net, PEOPLE, 4, seed=1).shape == (2, 4, 16, 16, 16)


def test_a_model_of_other_dimensions_is_refused():
    with pytest.raises(ValueError, match="ndim must be 2 or 3"):
        CHeartNet(CHeartSettings(size=16, ndim=1, channels=(4, 8)))


def test_generation_draws_from_the_training_subjects_latents():
    cycles = _cycles(12)
    people = [PEOPLE[i % 2] for i in range(12)]
    net, _ = train(SMALL, cycles, people, seed=0)
    with torch.no_grad():
        means, log_var = net.encode(torch.nn.functional.one_hot(torch.as_tensor(cycles[:, 0]).long(), 4)
                                    .movedim(-1, 1).float(), condition_vector(people))
    torch.testing.assert_close(net.latent_mean, means.mean(dim=0))
    covariance = net.latent_scale @ net.latent_scale.T
    torch.testing.assert_close(covariance, torch.cov(means.T) + torch.diag(log_var.exp().mean(dim=0)))
    untrained = CHeartNet(SMALL)  # draws from the prior until fitted
    assert torch.equal(untrained.latent_mean, torch.zeros(4)) and torch.equal(untrained.latent_scale, torch.eye(4))
