"""Scoring a registration of a perturbed pair on the original pair: the identity chain changes nothing, the
perturbed pair's true field scores as well as the clean truth, and the metric follows the annotations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from regbench.advchain import AdvChain, perturb_pair
from regbench.displacement import Displacement
from regbench.errors import RegbenchError
from regbench.pair import Pair
from regbench.robustness.scoring import score_perturbed, score_registration


def _keypoints(pair: Pair, truth: Displacement) -> Pair:
    """20 corresponding keypoints: fixed ones inside, the moving ones where the true field sends them."""
    from scipy import ndimage

    fixed = np.random.default_rng(3).uniform(4, np.array(pair.fixed.image.shape) - 5, (20, pair.ndim))
    moving = fixed + np.stack([ndimage.map_coordinates(truth.data[..., c], fixed.T, order=1)
                               for c in range(pair.ndim)], axis=1)
    return Pair(pair.id, dataclasses.replace(pair.fixed, keypoints=fixed),
                dataclasses.replace(pair.moving, keypoints=moving))


def test_identity_chain_scores_as_the_clean_pair(synthetic_pair):
    pair, truth = synthetic_pair((24, 24), seed=2)
    disp = Displacement(np.random.default_rng(0).normal(0, 0.5, (24, 24, 2)).astype(np.float32))
    clean = score_registration(pair, disp, truth)
    unperturbed = score_perturbed(pair, AdvChain((24, 24)), disp, truth)
    assert (clean.metric, clean.error_metric) == ("DSC", "disp_error_mm")
    assert unperturbed.accuracy == pytest.approx(clean.accuracy, abs=1e-12)
    assert unperturbed.error == pytest.approx(clean.error, abs=1e-5)


@pytest.mark.parametrize("budget", [0.5, 1.0])
def test_the_perturbed_truth_scores_as_well_as_the_clean_truth(budget, synthetic_pair):
    """A method that finds the perturbed pair's true field exactly is perfect on the original pair: no second
    label resampling, so Dice equals the clean truth's (1 on this pair) and the error is about 0."""
    pair, truth = synthetic_pair((32, 32), seed=2)
    pair = _keypoints(pair, truth)
    chain = AdvChain.for_image(pair.moving.image, budget=budget).randomise_(np.random.default_rng(4))
    _, new_truth = perturb_pair(pair, chain, truth)
    clean = score_registration(pair, truth, truth)
    perturbed = score_perturbed(pair, chain, new_truth, truth)
    assert clean.metric == "TRE_kp" and clean.error_metric == "disp_error_mm"
    # the composed field differs from the truth by rounding and the 2^-24 of the elastic inversion only
    assert perturbed.accuracy == pytest.approx(clean.accuracy, abs=1e-3)
    assert perturbed.error < 1e-4
    without_keypoints = Pair(pair.id, dataclasses.replace(pair.fixed, keypoints=None), pair.moving)
    dice = score_perturbed(without_keypoints, chain, new_truth, truth)
    assert dice.metric == "DSC" and dice.accuracy > 0.99


def test_metrics_follow_the_annotations(synthetic_pair):
    pair, truth = synthetic_pair((16, 16), seed=1)
    disp = Displacement.zeros((16, 16))
    labels_only = score_registration(pair, disp)
    assert (labels_only.metric, labels_only.error_metric) == ("DSC", "1-DSC")
    assert labels_only.error == pytest.approx(1 - labels_only.accuracy)
    bare = Pair(pair.id, dataclasses.replace(pair.fixed, labels=None), dataclasses.replace(pair.moving, labels=None))
    truth_only = score_registration(bare, disp, truth)
    assert truth_only.metric == truth_only.error_metric == "disp_error_mm"
    with pytest.raises(RegbenchError, match="no keypoints, no label maps and no true displacement"):
        score_registration(bare, disp)
