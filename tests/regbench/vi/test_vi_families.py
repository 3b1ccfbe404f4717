"""regbench.vi families: densities against dense reference formulas, sampling moments, linear memory."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import distributions as D

from regbench.errors import RegbenchError
from regbench.vi import DiagonalNormal, LowRankNormal, Mixture


def dense_covariance(q: DiagonalNormal) -> torch.Tensor:
    """diag(sigma^2) + U U^T written out, (*batch, d, d): the reference the structured maths must equal."""
    covariance = torch.diag_embed(q.log_scale.exp().square())
    if isinstance(q, LowRankNormal):
        covariance = covariance + q.factor @ q.factor.transpose(-1, -2)
    return covariance


def randomised(q: DiagonalNormal, seed: int) -> DiagonalNormal:
    """Give every parameter random values, so that no test passes on the initial zeros and ones."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in q.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    return q


@pytest.mark.parametrize("rank", [0, 1, 3])
def test_log_prob_and_entropy_equal_the_dense_normal(rank):
    q = randomised(LowRankNormal(6, rank) if rank else DiagonalNormal(6), seed=rank)
    reference = D.MultivariateNormal(q.loc.detach().double(), dense_covariance(q).detach().double())
    x = torch.randn(10, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(q.log_prob(x.float()).double(), reference.log_prob(x), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(q.distribution().entropy().double(), reference.entropy(), rtol=1e-5, atol=1e-4)
    # Marginal std: sqrt of the dense covariance's diagonal.
    torch.testing.assert_close(q.stddev.double(), reference.covariance_matrix.diagonal().sqrt(), rtol=1e-5,
                               atol=1e-6)


def test_mixture_log_prob_is_the_weighted_sum_of_dense_normals():
    torch.manual_seed(3)
    q = Mixture(4, 3, rank=2)
    with torch.no_grad():
        q.logits.copy_(torch.tensor([0.3, -1.0, 0.5]))
    components = D.MultivariateNormal(q.components.loc.detach(), dense_covariance(q.components).detach())
    x = torch.randn(7, 4)
    # log sum_k w_k N(x; mu_k, Sigma_k), written out.
    expected = (q.weights.log().detach() + components.log_prob(x[:, None, :])).logsumexp(-1)
    torch.testing.assert_close(q.log_prob(x).detach(), expected, rtol=1e-5, atol=1e-5)


def test_mixture_entropy_estimate_of_separated_components():
    # Components 100 sigma apart barely overlap, so H = sum_k w_k H_k + H(w) up to a negligible term.
    torch.manual_seed(4)
    loc = torch.tensor([[0.0, 0.0], [100.0, 0.0]])
    q = Mixture(2, 2, rank=1, loc=loc)
    with torch.no_grad():
        q.logits.copy_(torch.tensor([0.0, 1.0]))
    samples, weights = q.weighted_samples(2000)
    weights_k = q.weights.detach()
    expected = (weights_k * q.components.distribution().entropy().detach()).sum() \
        - (weights_k * weights_k.log()).sum()
    assert torch.isclose(weights.sum(), torch.tensor(1.0))
    assert float(q.entropy_term(samples, weights).detach()) == pytest.approx(float(expected), abs=0.05)


def test_samples_have_the_family_mean_and_covariance():
    q = randomised(LowRankNormal(3, 2), seed=5)
    torch.manual_seed(6)
    samples, weights = q.weighted_samples(20000)
    # Antithetic pairs: the sample mean is exactly mu; the covariance is estimated from 40000 draws.
    torch.testing.assert_close(samples.mean(0), q.loc.detach(), rtol=0, atol=1e-5)
    torch.testing.assert_close(samples.detach().T.cov(), dense_covariance(q).detach(), rtol=0, atol=0.05)
    assert torch.allclose(weights, torch.full_like(weights, 1 / 40000))


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), MB."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024


def test_a_million_dimensions_with_rank_four_use_linear_memory():
    # A d x d matrix would be 4 TB. Sampling, density, entropy and their gradient need a few dozen tensors
    # of d or d x k floats (4 MB and 16 MB): measured, the peak grows by about 270 MB.
    torch.manual_seed(0)
    q = LowRankNormal(10**6, 4)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the peak to the current size
    except OSError:
        pytest.skip("needs Linux /proc/self/clear_refs to measure peak memory")
    before = _peak_rss_mb()
    x = q.rsample(2)
    value = q.log_prob(x).sum() + q.distribution().entropy()
    value.backward()
    growth = _peak_rss_mb() - before
    assert torch.isfinite(value) and q.factor.grad is not None
    assert growth < 1000, f"peak memory grew by {growth:.0f} MB"


def test_bad_arguments_are_refused():
    with pytest.raises(RegbenchError, match="dim"):
        DiagonalNormal(0)
    with pytest.raises(RegbenchError, match="init_scale"):
        DiagonalNormal(3, init_scale=0.0)
    with pytest.raises(RegbenchError, match="rank"):
        LowRankNormal(3, 0)
    with pytest.raises(RegbenchError, match="loc must have shape"):
        DiagonalNormal(3, loc=torch.zeros(4))
    with pytest.raises(RegbenchError, match="components"):
        Mixture(3, 0)
    assert math.isclose(float(DiagonalNormal(2, init_scale=2.0).stddev[0].detach()), 2.0, rel_tol=1e-6)
