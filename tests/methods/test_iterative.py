"""iterative: improves on its affine initialisation on non-rigid pairs and keeps the field smooth.

Methods run on one thread: these tests check the algorithm, and one thread keeps their time steady on a
busy machine, where two OpenMP threads can run several times slower (the contract test uses the default).
"""

from __future__ import annotations

import pytest
import torch

from regbench.errors import RegbenchError
from regbench.methods.iterative import IterativeParams
from regbench.registry import get_method
from regbench.spatial import jacobian_det

SHAPE = (40, 36, 32)


@pytest.mark.parametrize("multimodal", [False, True], ids=["lncc", "mind"])
def test_beats_affine_on_a_non_rigid_pair_without_folding(synthetic_pair, mean_dice, multimodal):
    # A random diffeomorphism of up to 4 voxels (velocity amplitude), smooth over about 8 voxels.
    pair, _ = synthetic_pair(SHAPE, seed=21, amplitude=4.0, multimodal=multimodal)
    affine = mean_dice(pair, get_method("affine", threads=1).register(pair))
    disp = get_method("iterative", threads=1).register(pair)
    dice = mean_dice(pair, disp)
    det = jacobian_det(disp.to_torch(torch.float64))
    # Measured: identity 0.71, affine 0.74 (LNCC) / 0.75 (MI), iterative 0.86 (LNCC) / 0.84 (MIND);
    # the velocity field keeps det J above 0.4 everywhere.
    assert dice >= affine + 0.05, f"iterative {dice:.3f} vs affine {affine:.3f}"
    assert (det <= 0).double().mean() < 1e-4
    assert det.log().std() < 0.2


def test_similarity_follows_the_modalities(synthetic_pair):
    mono, _ = synthetic_pair((12, 10), seed=1)
    multi, _ = synthetic_pair((12, 10), seed=1, multimodal=True)
    method = get_method("iterative")
    assert method.similarity_name(mono) == "lncc" and method.similarity_name(multi) == "mind"
    assert get_method("iterative", similarity="mse").similarity_name(multi) == "mse"


def test_without_svf_the_displacement_itself_is_optimised(synthetic_pair, mean_dice):
    pair, _ = synthetic_pair((48, 40), seed=3, amplitude=3.0)
    method = get_method("iterative", scale="smoke", svf_steps=0, threads=1)
    field = torch.full((1, 2, 4, 4), 0.5)
    assert method.displacement(field) is field
    assert mean_dice(pair, method.register(pair)) > mean_dice(pair, get_method("identity").register(pair)) + 0.05


def test_nested_affine_settings_override_by_mapping():
    method = get_method("iterative", affine={"lr": 0.02, "iterations": [5, 5]})
    assert method.params.affine.lr == 0.02 and method.params.affine.iterations == (5, 5)
    assert method.params.affine.factors == IterativeParams().affine.factors
    with pytest.raises(RegbenchError, match="similarity must be one of"):
        IterativeParams(similarity="mi")
    with pytest.raises(RegbenchError, match="svf_steps must be >= 0"):
        IterativeParams(svf_steps=-1)
