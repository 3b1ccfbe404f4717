"""Similarity losses: identical images give the minimum, invariances hold, LNCC matches a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from regbench.methods.components import similarity as S


def _smooth_image(rng: np.random.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """Smooth random structure scaled to [0, 1], (1, 1, *shape) float64."""
    image = ndimage.gaussian_filter(rng.random(shape), 2.0)
    image = (image - image.min()) / (image.max() - image.min())
    return torch.from_numpy(image)[None, None]


@pytest.mark.parametrize("shape", [(24, 20), (14, 12, 10)])
def test_identical_images_give_the_minimum(rng, shape):
    image = _smooth_image(rng, shape)
    other = torch.roll(image, 3, dims=2)
    assert S.mse_loss(image, image) == 0
    assert S.ncc_loss(image, image).abs() < 1e-12
    assert S.lncc_loss(image, image).abs() < 1e-12
    assert S.mind_loss(image, image) == 0
    for loss in (S.mse_loss, S.ncc_loss, S.lncc_loss, S.mi_loss, S.ngf_loss, S.mind_loss):
        assert loss(image, image) < loss(image, other), loss.__name__


def test_lncc_with_a_window_covering_the_image_is_the_global_squared_correlation(rng):
    # On a 5 x 5 image a 9-wide window around any voxel covers the whole image, so every local statistic is
    # the global one: loss = 1 - (cov^2 + eps) / (var_f var_w + eps) with eps = 1e-5, numbers from numpy.
    fixed, warped = rng.random((5, 5)), rng.random((5, 5))
    cov = np.mean(fixed * warped) - fixed.mean() * warped.mean()
    expected = 1 - (cov**2 + 1e-5) / (fixed.var() * warped.var() + 1e-5)
    found = S.lncc_loss(torch.from_numpy(fixed)[None, None], torch.from_numpy(warped)[None, None], window=9)
    np.testing.assert_allclose(float(found), expected, rtol=1e-10)


def test_correlations_ignore_linear_intensity_changes(rng):
    image = _smooth_image(rng, (20, 18, 16))
    # cov and both variances scale by a^2 (squared) so the local ratio is exactly 1; global NCC keeps the sign.
    assert S.lncc_loss(image, 0.5 - 2.0 * image).abs() < 1e-12
    assert S.ncc_loss(image, 3.0 * image + 1.0).abs() < 1e-12
    torch.testing.assert_close(S.ncc_loss(image, -image), torch.tensor(2.0, dtype=torch.float64), atol=1e-12, rtol=0)


def test_mutual_information_prefers_a_monotone_remap_to_a_shuffled_copy(rng):
    image = _smooth_image(rng, (20, 18, 16))
    remapped = image**3  # same ordering, different intensities (as one tissue looks in two scanners)
    shuffled = image.flatten()[torch.from_numpy(rng.permutation(image.numel()))].view_as(image)
    assert S.mi_loss(image, remapped) < S.mi_loss(image, shuffled) - 1.0  # nats: -1.45 vs -0.02
    assert S.mi_loss(image, shuffled) > -0.05  # an independent copy shares (almost) no information


def test_ngf_is_invariant_to_contrast_inversion(rng):
    image = _smooth_image(rng, (20, 18, 16))
    other = torch.roll(image, 2, dims=3)
    # Inverting flips every gradient, and the squared cosine ignores the sign: exactly the same loss.
    torch.testing.assert_close(S.ngf_loss(image, 1.0 - other), S.ngf_loss(image, other))
    assert S.ngf_loss(image, 1.0 - image) < S.ngf_loss(image, other)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="lncc_loss\\(\\): fixed \\(1, 1, 4, 4\\) and warped"):
        S.lncc_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="single-channel"):
        S.mi_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))


def test_modules_forward_their_settings(rng):
    image, other = _smooth_image(rng, (12, 10)), _smooth_image(rng, (12, 10))
    assert S.LNCC(window=3)(image, other) == S.lncc_loss(image, other, window=3)
    assert S.MI(bins=16)(image, other) == S.mi_loss(image, other, bins=16)
    assert S.MIND(radius=2, dilation=1)(image, other) == S.mind_loss(image, other, radius=2, dilation=1)
    assert "window=3" in repr(S.LNCC(window=3))
