"""Structured variational inference: normal families with diagonal plus low-rank covariance, mixtures of
them, an ELBO fit loop, and Langevin chains preconditioned by the fitted family; usable for any
differentiable log-density, registration being one use (``regbench.methods.bayesian``). After Le Folgoc et
al., "Is MC dropout Bayesian?" (arXiv:2110.04286), and Grzech et al. (MELBA 2021) for the chains.
"""

from regbench.vi.families import DiagonalNormal, Family, LowRankNormal, Mixture
from regbench.vi.fit import FitResult, LogJoint, elbo, fit
from regbench.vi.langevin import sgld

__all__ = ["DiagonalNormal", "Family", "FitResult", "LogJoint", "LowRankNormal", "Mixture", "elbo", "fit", "sgld"]
