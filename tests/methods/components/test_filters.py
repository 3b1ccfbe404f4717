"""Box and Gaussian filters: an independent implementation, constants preserved up to the border."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from regbench.methods.components.filters import box_filter, gaussian_blur


@pytest.mark.parametrize("shape", [(2, 3, 9, 10), (1, 2, 9, 10, 11)])
@pytest.mark.parametrize("size", [1, 3, 5])
def test_box_filter_is_the_mean_over_the_window_voxels_inside_the_image(rng, shape, size):
    x = torch.from_numpy(rng.random(shape))
    pool = F.avg_pool2d if len(shape) == 4 else F.avg_pool3d
    expected = pool(x, size, stride=1, padding=size // 2, count_include_pad=False)
    torch.testing.assert_close(box_filter(x, size), expected, rtol=0, atol=1e-12)


def test_box_filter_rejects_even_windows():
    with pytest.raises(ValueError, match="positive odd"):
        box_filter(torch.zeros(1, 1, 4, 4), 4)


def test_gaussian_blur_matches_scipy_inside_and_keeps_a_constant_at_the_border(rng):
    image = rng.random((20, 22, 18))
    blurred = gaussian_blur(torch.from_numpy(image)[None, None], 1.5)[0, 0].numpy()
    expected = ndimage.gaussian_filter(image, 1.5, truncate=3.0)
    inner = (slice(5, -5),) * 3  # radius ceil(3 * 1.5) = 5: no border effect here
    np.testing.assert_allclose(blurred[inner], expected[inner], atol=1e-12)
    constant = gaussian_blur(torch.full((1, 1, 8, 9), 2.5, dtype=torch.float64), 2.0)
    torch.testing.assert_close(constant, torch.full_like(constant, 2.5))
    x = torch.from_numpy(image)[None, None]
    assert gaussian_blur(x, 0) is x
