"""The evidence lower bound and a stochastic-gradient loop that maximises it.

ELBO(q) = E_q[log p(x, data)] + H[q] <= log p(data), estimated from the family's weighted, reparameterised
samples (``Family.weighted_samples``), so its gradient reaches every variational parameter. Model
hyperparameters (a noise level, a prior weight) can be fitted in the same loop by passing them as
``hyperparams``: maximising the ELBO over them is empirical Bayes (type-II maximum likelihood).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from regbench.errors import RegbenchError
from regbench.vi.families import Family

LogJoint = Callable[[torch.Tensor], torch.Tensor]
"""log p(x, data) for a batch of points (m, d) -> (m,); differentiable in x."""


def elbo(q: Family, log_joint: LogJoint, *, samples: int = 1, antithetic: bool = True) -> torch.Tensor:
    """Monte Carlo ELBO estimate with ``samples`` draws per Gaussian (doubled by ``antithetic``)."""
    x, weights = q.weighted_samples(samples, antithetic=antithetic)
    values = log_joint(x)
    if values.shape != weights.shape:
        raise RegbenchError(f"elbo(): log_joint must map ({x.shape[0]}, d) points to ({x.shape[0]},) values, "
                            f"got {tuple(values.shape)}")
    return (weights * values).sum() + q.entropy_term(x, weights)


@dataclass(frozen=True)
class FitResult:
    """What ``fit`` returns: the ELBO estimate at every step (before that step's update)."""

    elbo: list[float]


def fit(q: Family, log_joint: LogJoint, *, steps: int, lr: float = 0.01, samples: int = 1,
        antithetic: bool = True, hyperparams: Iterable[torch.nn.Parameter] = (), hyper_lr: float | None = None,
        final_lr: float | None = None) -> FitResult:
    """Maximise the ELBO of ``q`` over its parameters (and ``hyperparams``) with Adam.

    Args:
        q: the variational family, updated in place.
        log_joint: log p(x, data) for a batch (m, d) -> (m,).
        steps: Adam steps.
        lr: learning rate of q's parameters.
        samples: draws per step (per component for mixtures), doubled by ``antithetic``.
        hyperparams: model parameters maximised jointly (empirical Bayes); ``hyper_lr`` defaults to ``lr``.
        final_lr: if given, the learning rates decay geometrically to ``final_lr / lr`` of their start over
            the run, which lets the stochastic optimum settle (default: constant).
    """
    if steps < 0 or samples < 1:
        raise RegbenchError(f"fit(): need steps >= 0 and samples >= 1, got {steps} and {samples}")
    groups = q.parameter_groups(lr)
    hyper = list(hyperparams)
    if hyper:
        groups.append({"params": hyper, "lr": lr if hyper_lr is None else hyper_lr})
    optimiser = torch.optim.Adam(groups)
    scheduler = None
    if final_lr is not None and steps > 0:
        gamma = (final_lr / lr) ** (1.0 / steps)
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma)
    history = []
    for _ in range(steps):
        optimiser.zero_grad()
        value = elbo(q, log_joint, samples=samples, antithetic=antithetic)
        (-value).backward()
        optimiser.step()
        if scheduler is not None:
            scheduler.step()
        history.append(float(value.detach()))
    return FitResult(history)
