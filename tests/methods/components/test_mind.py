"""MIND-SSC: the neighbour pairs, the value range, and invariance to the intensity mapping."""

from __future__ import annotations

import pytest
import torch

from regbench.methods.components.mind import mind_ssc, ssc_offset_pairs


@pytest.mark.parametrize(("ndim", "count"), [(2, 4), (3, 12)])
def test_neighbour_pairs_are_the_orthogonal_pairs_of_the_axis_neighbours(ndim, count):
    # 2 * ndim neighbours, each orthogonal to all but itself and its opposite: 2n (2n - 2) / 2 pairs.
    pairs = ssc_offset_pairs(ndim, 2)
    assert len(pairs) == count
    for a, b in pairs:
        assert sum(x * x for x in a) == 4 and sum(x * y for x, y in zip(a, b)) == 0


@pytest.mark.parametrize("shape", [(1, 1, 16, 14), (1, 1, 12, 10, 11)])
def test_features_lie_in_unit_interval_and_ignore_linear_intensity_changes(rng, shape):
    image = torch.from_numpy(rng.random(shape))
    features = mind_ssc(image)
    assert features.shape == (1, 4 if len(shape) == 4 else 12, *shape[2:])
    assert features.min() > 0 and features.max() == 1  # exp(0) for the most similar pair at each voxel
    # a I + b scales every patch distance and the variance estimate by a^2: the ratio D / V is unchanged.
    torch.testing.assert_close(mind_ssc(3.0 * image + 7.0), features)


def test_constant_image_gives_ones():
    assert torch.equal(mind_ssc(torch.full((1, 1, 8, 8, 8), 0.3)), torch.ones(1, 12, 8, 8, 8))
