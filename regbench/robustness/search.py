"""The robustness track's searches: how much a bounded perturbation of the moving image costs a method.

For one method, one pair and one budget (``regbench.advchain``):

- **random**: ``draws`` chains drawn uniformly within the bounds; their mean accuracy is the typical cost;
- **adversarial**: the chain that maximises the method's error (``scoring``), the worst for the method of
  - the worst random draw (the one with the highest error),
  - **CMA-ES** (the ``cma`` package) from that draw, over the chain's unconstrained parameter vector, for
    every method (a black box: only ``register`` is called),
  - **gradient** ascent from that draw through the network, for methods that implement
    ``differentiable_forward`` (``gradient``).

Each of CMA-ES and the gradient search gets ``evaluations`` method evaluations: a CMA-ES candidate costs one
``register``, a gradient step one forward and backward pass plus one ``register`` to score the iterate
exactly. Since the adversarial chain is the worst of all chains evaluated, the best random draw among them, its
error is at least the worst random draw's by construction, and so at least the random mean; what the track
measures is by how much. Which search found it is recorded (``random`` where neither search improved on the
draws). Where the error is 1 - DSC the same holds for the accuracy; where it is the displacement error, the
accuracy (DSC or TRE) follows it only on average.

Everything is seeded from ``SearchSettings.seed``, the pair's key and the budget, so a pair's results do not
depend on which other pairs or budgets run, and the method's own seeding makes each ``register`` repeatable.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import cma
import numpy as np

from regbench.advchain import AdvChain, ChainBounds, perturb_pair
from regbench.displacement import Displacement
from regbench.method import Method
from regbench.pair import Pair
from regbench.robustness.gradient import Differentiable, gradient_search
from regbench.robustness.scoring import Score, check_scorable, score_perturbed, score_registration

SEARCHES = ("random", "cma-es", "gradient")


@dataclass(frozen=True)
class SearchSettings:
    """How hard each search tries.

    Attributes:
        draws: random chains per pair and budget.
        evaluations: method evaluations for CMA-ES, and again for the gradient search where it runs.
        popsize: CMA-ES population (lambda); smaller than ``cma``'s default (4 + 3 ln n, 15 for a 2D chain)
            so that a few dozen evaluations make several generations.
        sigma: CMA-ES initial step size in the unconstrained parameters (tanh(0.5) = 0.46 of a bound).
        lr: Adam learning rate of the gradient search, in the unconstrained parameters.
        bounds: the chain's bounds at budget 1.
        seed: of the random draws and of CMA-ES's sampling.
    """

    draws: int = 5
    evaluations: int = 40
    popsize: int = 8
    sigma: float = 0.5
    lr: float = 0.3
    bounds: ChainBounds = field(default_factory=ChainBounds)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.draws < 1 or self.evaluations < 0 or self.popsize < 2 or self.sigma <= 0 or self.lr <= 0:
            raise ValueError(f"SearchSettings: need draws >= 1, evaluations >= 0, popsize >= 2, sigma > 0 and "
                             f"lr > 0, got {self.draws}, {self.evaluations}, {self.popsize}, {self.sigma} and "
                             f"{self.lr}")


class ChainObjective:
    """Scores chains on one pair: perturb the moving case, ``register``, score on the original pair; counts
    the registrations in ``evaluations``."""

    def __init__(self, method: Method, pair: Pair, truth: Displacement | None,
                 labels: Sequence[int] | None = None) -> None:
        check_scorable(pair, truth)
        self.method, self.pair, self.truth, self.labels = method, pair, truth, labels
        self.evaluations = 0

    def __call__(self, chain: AdvChain) -> Score:
        perturbed, _ = perturb_pair(self.pair, chain)
        disp = self.method.register(perturbed.blind())  # as the benchmark registers: no labels, no keypoints
        self.evaluations += 1
        return score_perturbed(self.pair, chain, disp, self.truth, labels=self.labels)


@dataclass(frozen=True)
class Found:
    """The worst chain one search found: its score and how many method evaluations the search used."""

    search: str
    chain: AdvChain
    score: Score
    evaluations: int


@dataclass(frozen=True)
class BudgetResult:
    """Everything searched on one pair at one budget: every random draw's score, each search's worst chain,
    and the adversarial chain (the worst of those)."""

    budget: float
    random: list[Score]
    searches: dict[str, Found]

    @property
    def adversarial(self) -> Found:
        """The worst chain of all searches; on equal errors the earlier search in ``SEARCHES`` (so a search
        is named only where it beat the random draws)."""
        ranked = [self.searches[name] for name in SEARCHES if name in self.searches]
        return max(ranked, key=lambda found: found.score.error)  # max keeps the first of equal values


def _generator(settings: SearchSettings, pair: Pair, budget: float) -> np.random.Generator:
    """A generator for one pair and budget, independent of what else runs."""
    return np.random.default_rng([settings.seed, zlib.crc32(pair.id.key.encode()), round(budget * 1e6)])


def cma_search(objective: ChainObjective, start: AdvChain, rng: np.random.Generator, *, evaluations: int,
               popsize: int, sigma: float) -> tuple[AdvChain, Score, int]:
    """CMA-ES maximising the error over the unconstrained vector, from ``start`` (not evaluated again), with
    at most ``evaluations`` >= 1 method evaluations (the last generation may be cut short). Samples come from
    ``rng``, not numpy's global state. Returns the worst chain evaluated, its score and the evaluations used."""
    options = {"seed": np.nan, "randn": lambda lam, n: rng.standard_normal((lam, n)), "popsize": popsize,
               "maxfevals": evaluations, "verbose": -9, "verb_log": 0, "verb_disp": 0}
    strategy = cma.CMAEvolutionStrategy(start.vector(), sigma, options)
    chain = copy.deepcopy(start)
    worst: tuple[np.ndarray, Score] | None = None
    used = 0
    while True:
        candidates = strategy.ask()[: evaluations - used]
        scores = [objective(chain.set_vector(x)) for x in candidates]
        used += len(scores)
        for x, score in zip(candidates, scores):
            if worst is None or score.error > worst[1].error:
                worst = (np.array(x), score)
        if used >= evaluations or len(candidates) < popsize:
            break
        strategy.tell(candidates, [-score.error for score in scores])
        if strategy.stop():
            break
    return chain.set_vector(worst[0]), worst[1], used


def search_budget(method: Method, pair: Pair, budget: float, truth: Displacement | None = None, *,
                  settings: SearchSettings = SearchSettings(),
                  labels: Sequence[int] | None = None) -> BudgetResult:
    """Random draws, then CMA-ES and (for ``Differentiable`` methods) gradient ascent from the worst draw."""
    if not 0 < budget <= 1:
        raise ValueError(f"search_budget(): budget must be within (0, 1], got {budget} (budget 0 is the clean pair)")
    objective = ChainObjective(method, pair, truth, labels)
    rng = _generator(settings, pair, budget)
    template = AdvChain.for_image(pair.moving.image, bounds=settings.bounds, budget=budget)
    draws = [copy.deepcopy(template).randomise_(rng) for _ in range(settings.draws)]
    scores = [objective(chain) for chain in draws]
    worst = max(range(len(draws)), key=lambda i: scores[i].error)
    start, start_score = draws[worst], scores[worst]
    searches = {"random": Found("random", start, start_score, settings.draws)}
    if settings.evaluations > 0:
        chain, score, used = cma_search(objective, start, rng, evaluations=settings.evaluations,
                                        popsize=settings.popsize, sigma=settings.sigma)
        searches["cma-es"] = Found("cma-es", chain, score, used)
    if isinstance(method, Differentiable) and settings.evaluations >= 2:
        before = objective.evaluations
        chain, score = gradient_search(method, pair, truth, start, start_score, objective,
                                       steps=settings.evaluations // 2, lr=settings.lr, labels=labels)
        searches["gradient"] = Found("gradient", chain, score, 2 * (objective.evaluations - before))
    return BudgetResult(budget, scores, searches)


@dataclass(frozen=True)
class RobustnessRecord:
    """One row of the robustness track: a pair, a budget and a kind (``clean``, ``random``, ``adversarial``).

    ``accuracy`` and ``error`` are ``scoring``'s numbers (means over the draws for ``random``); ``search`` says
    which search found an adversarial chain (``none`` for clean, ``random`` for the random mean);
    ``evaluations`` counts method evaluations (for ``adversarial``: every search's, the random draws included).
    The clean row has budget 0.
    """

    pair: str
    budget: float
    kind: str
    search: str
    metric: str
    accuracy: float
    error_metric: str
    error: float
    evaluations: int


def robustness_records(method: Method, pair: Pair, budgets: Sequence[float], truth: Displacement | None = None, *,
                       settings: SearchSettings = SearchSettings(),
                       labels: Sequence[int] | None = None) -> list[RobustnessRecord]:
    """The clean row, then a random and an adversarial row per budget, for one method and one pair."""
    clean = score_registration(pair, method.register(pair.blind()), truth, labels=labels)
    key = pair.id.key
    records = [RobustnessRecord(key, 0.0, "clean", "none", clean.metric, clean.accuracy, clean.error_metric,
                                clean.error, 1)]
    for budget in budgets:
        result = search_budget(method, pair, budget, truth, settings=settings, labels=labels)
        records.append(RobustnessRecord(
            key, budget, "random", "random", clean.metric, float(np.mean([s.accuracy for s in result.random])),
            clean.error_metric, float(np.mean([s.error for s in result.random])), len(result.random)))
        worst = result.adversarial
        total = sum(found.evaluations for found in result.searches.values())
        records.append(RobustnessRecord(key, budget, "adversarial", worst.search, clean.metric,
                                        worst.score.accuracy, clean.error_metric, worst.score.error, total))
    return records
