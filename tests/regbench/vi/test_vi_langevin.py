"""regbench.vi.sgld: preconditioned Langevin chains sample a known Gaussian, even from a poor q."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as D

from regbench.errors import RegbenchError
from regbench.vi import DiagonalNormal, LowRankNormal, sgld


@pytest.mark.parametrize("rank", [0, 1])
def test_chains_recover_the_mean_and_covariance_of_a_gaussian(rank):
    # Target N(m, S) with correlation 0.8. q is deliberately wrong (centred at 0, unit scale): the chains
    # must find the target's moments by themselves. 8 chains x 200 kept states = 1600 correlated draws;
    # the Euler step adds a bias of order tau (about 5 % of the variance at tau = 0.1).
    target = D.MultivariateNormal(torch.tensor([2.0, -1.0]), torch.tensor([[1.0, 0.8], [0.8, 1.0]]))
    torch.manual_seed(0)
    q = LowRankNormal(2, 1, init_factor=0.5) if rank else DiagonalNormal(2)
    samples = sgld(q, target.log_prob, steps=1100, step_size=0.1, burn_in=100, thin=5, chains=8)
    assert samples.shape == (8 * 200, 2)
    torch.testing.assert_close(samples.mean(0), target.mean, rtol=0, atol=0.15)
    torch.testing.assert_close(samples.T.cov(), target.covariance_matrix, rtol=0, atol=0.2)


def test_bad_settings_are_refused():
    with pytest.raises(RegbenchError, match="burn_in"):
        sgld(DiagonalNormal(1), lambda x: -x.square().sum(1), steps=10, step_size=0.1, burn_in=10)


def test_a_steep_posterior_does_not_throw_the_chains_off():
    # p(x) ~ exp(-x^4), chains started around 3 by a poor q: at x = 3 the gradient is 108, so an unclipped
    # step of tau = 0.1 lands at -7.8, where it is 1900, and the chain diverges. The clipped drift walks back
    # instead, and the chains sample the target: E[x^2] = Gamma(3/4) / Gamma(1/4) = 0.338.
    torch.manual_seed(0)
    q = DiagonalNormal(1, loc=torch.tensor([3.0]))
    samples = sgld(q, lambda x: -x.pow(4).sum(1), steps=2100, step_size=0.1, burn_in=100, thin=5, chains=8)
    assert torch.isfinite(samples).all()
    assert float(samples.square().mean()) == pytest.approx(0.338, abs=0.06)
