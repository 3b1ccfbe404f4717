"""MAD's parts: random convolutions change appearance but not geometry; the network and the distance have the
documented shapes, are symmetric in the pair and differentiable in the warped image."""

from __future__ import annotations

import pytest
import torch

from regbench.methods.components.mad_distance import MADNet, mad_loss, random_convolution


def _regions(shape: tuple[int, ...]) -> torch.Tensor:
    """(1, 1, *shape) three flat regions (0.2, 0.5, 0.9) split along the first axis."""
    image = torch.full((1, 1, *shape), 0.2, dtype=torch.float64)
    image[:, :, shape[0] // 3:] = 0.5
    image[:, :, 2 * shape[0] // 3:] = 0.9
    return image


@pytest.mark.parametrize("shape", [(18, 12), (12, 9, 7)])
def test_pointwise_random_convolution_is_an_intensity_map(shape):
    # 1x1 kernels act voxel by voxel: equal inputs give equal outputs, so flat regions stay flat and edges
    # stay where they were; the result is rescaled to [0, 1].
    image = _regions(shape)
    out = random_convolution(image, kernel_sizes=(1,), generator=torch.Generator().manual_seed(3))
    assert out.shape == image.shape
    assert out.min() >= 0 and out.max() <= 1
    for value in (0.2, 0.5, 0.9):
        inside = out[image == value]
        assert inside.max() - inside.min() < 1e-9


def test_random_convolution_is_fresh_per_image_and_reproducible_with_a_generator():
    batch = torch.rand(1, 1, 16, 14, generator=torch.Generator().manual_seed(0)).repeat(3, 1, 1, 1)
    out = random_convolution(batch, generator=torch.Generator().manual_seed(5))
    again = random_convolution(batch, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    # The same image three times gets three different appearances.
    assert (out[0] - out[1]).abs().mean() > 0.01 and (out[1] - out[2]).abs().mean() > 0.01


def test_random_convolution_refuses_bad_input():
    with pytest.raises(ValueError, match=r"expected \(B, 1, \*spatial\)"):
        random_convolution(torch.rand(1, 2, 8, 8))
    with pytest.raises(ValueError, match="odd kernel sizes"):
        random_convolution(torch.rand(1, 1, 8, 8), kernel_sizes=(2,))


@pytest.mark.parametrize("shape", [(2, 1, 37, 29), (1, 1, 13, 17, 11)])
def test_network_predicts_a_displacement_and_a_length_on_a_grid_four_times_coarser(shape):
    ndim = len(shape) - 2
    net = MADNet(ndim, channels=(4, 8, 8))
    assert net.stride == 4
    disp, length = net(torch.rand(shape), torch.rand(shape))
    coarse = tuple(n // 4 for n in shape[2:])  # two 2x average poolings, rounding down
    assert disp.shape == (shape[0], ndim, *coarse) and length.shape == (shape[0], 1, *coarse)
    assert (length > 0).all()  # softplus


def test_distance_is_symmetric_and_differentiable_in_the_warped_image():
    torch.manual_seed(0)
    net = MADNet(2, channels=(4, 8))
    fixed, warped = torch.rand(1, 1, 24, 20), torch.rand(1, 1, 24, 20, requires_grad=True)
    distance = mad_loss(fixed, warped, net=net)
    torch.testing.assert_close(distance, mad_loss(warped, fixed, net=net))
    distance.backward()
    assert torch.isfinite(warped.grad).all() and warped.grad.abs().sum() > 0


def test_network_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="expected two"):
        MADNet(2)(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 12))
    with pytest.raises(ValueError, match="ndim must be 2 or 3"):
        MADNet(4)
