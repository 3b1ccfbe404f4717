"""Variational families over R^d: mean-field normal, diagonal plus rank-k normal, and mixtures of either.

Each family is an ``nn.Module`` holding its trainable parameters; ``distribution()`` builds the matching
``torch.distributions`` object on demand (``Independent(Normal)``, ``LowRankMultivariateNormal``,
``MixtureSameFamily``), which does the sampling and density maths. The low-rank normal never forms a d x d
matrix: torch samples as mu + sigma * eps + U eta, evaluates the quadratic form by Woodbury's identity and
the log-determinant by the matrix determinant lemma, through the k x k capacitance I_k + U^T D^-1 U, so
sampling, ``log_prob`` and ``entropy`` cost O(d k^2) time and O(d k) memory (measured at d = 10^6, k = 4:
about 60 MB for the three, 270 MB with their gradient; tests/regbench/vi/test_vi_families.py checks it).
Only ``covariance_matrix`` and friends of the torch object are dense: never call them at large d.

For the ELBO (``regbench.vi.fit``) every family supplies *weighted samples*: reparameterised draws x_i with
weights w_i summing to 1, so that sum_i w_i f(x_i) estimates E_q[f] with gradients, and an entropy term for
them. Gaussians use antithetic pairs (mu + e, mu - e) and their closed-form entropy; a mixture draws from
every component (stratified sampling) and weights the draws by the mixing proportions, with the entropy
estimated as -sum_i w_i log q(x_i), which keeps the proportions trainable (the structured-normal and
mixture families of Le Folgoc et al., "Is MC dropout Bayesian?", arXiv:2110.04286, 2021).

The torch objects are built with argument validation off: the parameters are valid by construction (scales
are exponentials), and at small d the checks cost more than the maths.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import distributions as D
from torch import nn

from regbench.errors import RegbenchError

Batch = tuple[int, ...]


class Family(nn.Module, ABC):
    """A trainable distribution q over R^d (event shape (d,))."""

    dim: int

    @abstractmethod
    def distribution(self) -> D.Distribution:
        """The torch distribution of the current parameters (differentiable in them)."""

    @abstractmethod
    def weighted_samples(self, n: int, *, antithetic: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised samples (m, d) and weights (m,) summing to 1, for estimating E_q[f]."""

    @abstractmethod
    def entropy_term(self, samples: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """An estimate of the entropy H[q] (exact where known) given ``weighted_samples``' output."""

    def parameter_groups(self, lr: float) -> list[dict]:
        """Optimiser parameter groups at learning rate ``lr`` (families may scale some parameters' rates)."""
        return [{"params": list(self.parameters()), "lr": lr}]

    def rsample(self, n: int) -> torch.Tensor:
        """n reparameterised samples, (n, d)."""
        return self.distribution().rsample((n,))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log q(x) for x of shape (..., d)."""
        return self.distribution().log_prob(x)

    @property
    def mean(self) -> torch.Tensor:
        return self.distribution().mean

    @property
    def stddev(self) -> torch.Tensor:
        """Marginal standard deviation of each coordinate, (d,) (O(d k) for the low-rank family)."""
        return self.distribution().variance.sqrt()


def _check(dim: int, init_scale: float, where: str) -> None:
    if dim < 1:
        raise RegbenchError(f"{where}: dim must be >= 1, got {dim}")
    if init_scale <= 0:
        raise RegbenchError(f"{where}: init_scale must be > 0, got {init_scale}")


class DiagonalNormal(Family):
    """Mean-field normal N(mu, diag(sigma^2)), sigma = exp(log_scale).

    Args:
        dim: d.
        loc: initial mean, (*batch, d) (default zeros).
        init_scale: initial sigma of every coordinate.
        batch: leading batch shape of independent copies (the components of a ``Mixture``).
    """

    def __init__(self, dim: int, *, loc: torch.Tensor | None = None, init_scale: float = 1.0,
                 batch: Batch = ()) -> None:
        super().__init__()
        _check(dim, init_scale, type(self).__name__)
        self.dim = dim
        shape = (*batch, dim)
        if loc is not None and tuple(loc.shape) != shape:
            raise RegbenchError(f"{type(self).__name__}: loc must have shape {shape}, got {tuple(loc.shape)}")
        self.loc = nn.Parameter(torch.zeros(shape) if loc is None else loc.detach().clone().float())
        self.log_scale = nn.Parameter(torch.full(shape, math.log(init_scale)))

    def distribution(self) -> D.Distribution:
        return D.Independent(D.Normal(self.loc, self.log_scale.exp(), validate_args=False), 1,
                             validate_args=False)

    def weighted_samples(self, n: int, *, antithetic: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        return _gaussian_samples(self, n, antithetic)

    def entropy_term(self, samples: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.distribution().entropy()


class LowRankNormal(DiagonalNormal):
    """Normal with covariance diag(sigma^2) + U U^T, U of shape (d, rank): ``sN-VI`` of Le Folgoc et al.

    The rank-k factor captures the k strongest correlated directions that mean-field VI cannot (rank 1 is the
    family of Grzech et al. 2021). U starts at ``init_factor`` times standard normal entries, drawn from
    torch's global generator: seed it for reproducible fits. ``factor_lr`` scales U's learning rate: its
    single-sample gradients are noisier than the mean's (every draw moves every column), and where the
    log-density is stiff (registration) full-rate Adam steps make U random-walk to far too wide a q.
    """

    def __init__(self, dim: int, rank: int, *, loc: torch.Tensor | None = None, init_scale: float = 1.0,
                 init_factor: float = 0.01, factor_lr: float = 1.0, batch: Batch = ()) -> None:
        super().__init__(dim, loc=loc, init_scale=init_scale, batch=batch)
        if rank < 1:
            raise RegbenchError(f"LowRankNormal: rank must be >= 1 (rank 0 is DiagonalNormal), got {rank}")
        if factor_lr <= 0:
            raise RegbenchError(f"LowRankNormal: factor_lr must be > 0, got {factor_lr}")
        self.rank = rank
        self.factor_lr = factor_lr
        self.factor = nn.Parameter(init_factor * torch.randn(*batch, dim, rank))

    def parameter_groups(self, lr: float) -> list[dict]:
        return [{"params": [self.loc, self.log_scale], "lr": lr},
                {"params": [self.factor], "lr": lr * self.factor_lr}]

    def distribution(self) -> D.Distribution:
        return D.LowRankMultivariateNormal(self.loc, self.factor, self.log_scale.exp().square(), validate_args=False)


def _gaussian_samples(q: DiagonalNormal, n: int, antithetic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """n draws (2n with their antithetic mirrors mu - (x - mu)), equally weighted; (m, *batch, d)."""
    x = q.distribution().rsample((n,))
    if antithetic:
        x = torch.cat([x, 2 * q.loc - x])
    return x, torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=x.dtype, device=x.device)


class Mixture(Family):
    """Mixture of K normals of one family (diagonal, or diagonal plus rank ``rank``): ``sGMM-VI``.

    Args:
        dim: d.
        components: K.
        rank: 0 for mean-field components, else the rank of each component's factor.
        loc: initial component means (K, d); default: standard normal draws times ``init_spread`` (torch's
            global generator), so that the components start apart and can find different modes.
        init_scale: initial sigma of every component.
        init_spread: scale of the default initial means.
        factor_lr: relative learning rate of the components' factors (see ``LowRankNormal``).
    """

    def __init__(self, dim: int, components: int, *, rank: int = 0, loc: torch.Tensor | None = None,
                 init_scale: float = 1.0, init_spread: float = 1.0, factor_lr: float = 1.0) -> None:
        super().__init__()
        if components < 1:
            raise RegbenchError(f"Mixture: components must be >= 1, got {components}")
        self.dim = dim
        loc = init_spread * torch.randn(components, dim) if loc is None else loc
        self.components: DiagonalNormal = (
            LowRankNormal(dim, rank, loc=loc, init_scale=init_scale, factor_lr=factor_lr, batch=(components,))
            if rank else DiagonalNormal(dim, loc=loc, init_scale=init_scale, batch=(components,)))
        self.logits = nn.Parameter(torch.zeros(components))

    def parameter_groups(self, lr: float) -> list[dict]:
        return [*self.components.parameter_groups(lr), {"params": [self.logits], "lr": lr}]

    @property
    def weights(self) -> torch.Tensor:
        """Mixing proportions, (K,)."""
        return self.logits.softmax(0)

    def distribution(self) -> D.Distribution:
        mixing = D.Categorical(logits=self.logits, validate_args=False)
        return D.MixtureSameFamily(mixing, self.components.distribution(), validate_args=False)

    def weighted_samples(self, n: int, *, antithetic: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """n (or 2n antithetic) draws from every component, weighted by its proportion over the draws."""
        x, w = _gaussian_samples(self.components, n, antithetic)  # (m, K, d), (m,)
        weights = w[:, None] * self.weights[None, :]
        return x.flatten(0, 1), weights.flatten()

    def entropy_term(self, samples: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return -(weights * self.log_prob(samples)).sum()
