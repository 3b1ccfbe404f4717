"""The robustness track's searches: the adversarial chain costs at least as much accuracy as random chains,
CMA-ES keeps to its evaluation budget, the gradient search runs through a network, and it all repeats."""

from __future__ import annotations

import numpy as np
import pytest

from regbench.advchain import AdvChain
from regbench.registry import get_method
from regbench.robustness.search import ChainObjective, SearchSettings, cma_search, robustness_records, search_budget

SMALL = SearchSettings(draws=3, evaluations=12, popsize=4)


@pytest.mark.parametrize("name", ["identity", "affine"])
def test_adversarial_lowers_accuracy_at_least_as_much_as_random(name, synthetic_pair):
    """Without a true field the error is 1 - Dice, so the worst chain is also the least accurate one."""
    pair, _ = synthetic_pair((20, 20), seed=3)
    method = get_method(name, scale="smoke", threads=1)
    records = robustness_records(method, pair, [0.5], settings=SMALL)
    clean, random, adversarial = records
    assert [r.kind for r in records] == ["clean", "random", "adversarial"]
    assert {r.metric for r in records} == {"DSC"} and {r.error_metric for r in records} == {"1-DSC"}
    assert adversarial.accuracy <= random.accuracy
    assert adversarial.accuracy < clean.accuracy
    assert adversarial.search in ("random", "cma-es")
    assert (clean.evaluations, random.evaluations, adversarial.evaluations) == (1, 3, 3 + 12)


def test_adversarial_error_beats_random_with_a_true_field(synthetic_pair):
    pair, truth = synthetic_pair((20, 20), seed=3)
    result = search_budget(get_method("identity"), pair, 0.5, truth, settings=SMALL)
    assert result.adversarial.score.error_metric == "disp_error_mm"
    assert result.adversarial.score.error >= max(s.error for s in result.random) >= np.mean(
        [s.error for s in result.random])
    assert result.searches["cma-es"].evaluations == 12 and "gradient" not in result.searches


def test_cma_search_keeps_to_its_evaluation_budget(synthetic_pair):
    pair, truth = synthetic_pair((16, 16), seed=1)
    objective = ChainObjective(get_method("identity"), pair, truth)
    start = AdvChain.for_image(pair.moving.image, budget=0.3).randomise_(np.random.default_rng(0))
    chain, score, used = cma_search(objective, start, np.random.default_rng(1), evaluations=7, popsize=3, sigma=0.5)
    assert used == objective.evaluations == 7  # two generations of 3 and one cut to 1
    assert objective(chain).error == pytest.approx(score.error)


@pytest.mark.filterwarnings("ignore:.*untrained network:RuntimeWarning")
def test_gradient_search_runs_through_voxelmorph(synthetic_pair):
    """Smoke voxelmorph (affine pre-alignment and instance fine-tuning held constant): two ascent steps, each
    scored exactly; the gradient search never reports a chain worse than the draw it started from."""
    pair, truth = synthetic_pair((16, 16), seed=3)
    method = get_method("voxelmorph", scale="smoke", threads=1)
    settings = SearchSettings(draws=2, evaluations=4, popsize=2)
    result = search_budget(method, pair, 0.5, truth, settings=settings)
    gradient, random = result.searches["gradient"], result.searches["random"]
    assert gradient.evaluations == 4
    assert gradient.score.error >= random.score.error
    assert result.adversarial.score.error == max(found.score.error for found in result.searches.values())


def test_records_repeat_for_a_seed_and_change_with_it(synthetic_pair):
    pair, truth = synthetic_pair((16, 16), seed=2)
    method = get_method("identity")
    settings = SearchSettings(draws=2, evaluations=4, popsize=2)
    first = robustness_records(method, pair, [0.3, 1.0], truth, settings=settings)
    again = robustness_records(method, pair, [0.3, 1.0], truth, settings=settings)
    other = robustness_records(method, pair, [0.3, 1.0], truth, settings=SearchSettings(
        draws=2, evaluations=4, popsize=2, seed=1))
    assert first == again
    assert [r.error for r in first[1:]] != [r.error for r in other[1:]]
    assert [r.budget for r in first] == [0.0, 0.3, 0.3, 1.0, 1.0]


def test_invalid_requests_are_refused(synthetic_pair):
    pair, _ = synthetic_pair((16, 16), seed=2)
    with pytest.raises(ValueError, match=r"budget must be within \(0, 1\]"):
        search_budget(get_method("identity"), pair, 0.0)
    with pytest.raises(ValueError, match="draws >= 1"):
        SearchSettings(draws=0)
