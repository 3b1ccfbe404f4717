"""Instance optimisation: the refinement moves a method's field towards the true one on mono- and multi-modal
pairs, keeps a field that is already right, and the wrapper reports itself as ``<method>+io``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regbench.errors import RegbenchError
from regbench.methods.components.instance import InstanceOptimised, InstanceParams, adam_refine
from regbench.registry import get_method


@pytest.mark.parametrize("multimodal", [False, True])
def test_refining_the_identity_recovers_most_of_a_known_deformation(synthetic_pair, mean_dice, multimodal):
    pair, truth = synthetic_pair((96, 88), seed=5, amplitude=4.0, multimodal=multimodal)
    identity = get_method("identity")
    refined = InstanceOptimised(identity, InstanceParams())
    disp = refined.register(pair)
    before = np.linalg.norm(truth.data, axis=-1).mean()
    after = np.linalg.norm(disp.data - truth.data, axis=-1).mean()
    assert refined.name == "identity+io"
    assert after < 0.5 * before
    assert mean_dice(pair, disp) > mean_dice(pair, identity.register(pair)) + 0.1


def test_a_field_that_is_already_right_stays_right(synthetic_pair):
    pair, truth = synthetic_pair((64, 60), seed=2, amplitude=3.0)
    features = [torch.from_numpy(c.image.data)[None, None] for c in (pair.fixed, pair.moving)]
    initial = truth.to_torch()
    refined = adam_refine(*features, initial, spacing=1, iterations=40, lr=0.1, smoothness=0.0)
    error = (refined - initial).norm(dim=1)[0, 8:-8, 8:-8]  # away from the border, where the warp repeats edges
    assert error.mean() < 0.2


def test_the_wrapper_drops_uncertainty_and_keeps_the_inner_method_unchanged(synthetic_pair):
    bayesian = get_method("bayesian", scale="smoke")
    assert bayesian.capabilities.uncertainty
    wrapped = InstanceOptimised(bayesian, InstanceParams.smoke())
    assert not wrapped.capabilities.uncertainty and wrapped.resources == bayesian.resources
    assert (wrapped.seed, wrapped.threads) == (bayesian.seed, bayesian.threads)


def test_settings_are_checked():
    with pytest.raises(RegbenchError, match="iterations >= 1"):
        InstanceParams(iterations=0)
    with pytest.raises(RegbenchError, match="unknown hyperparameter"):
        InstanceParams().replace(lambda_diffusion=1.0)
