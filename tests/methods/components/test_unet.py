"""The U-Net: any input size in, the same size out; configuration respected."""

from __future__ import annotations

import pytest
import torch

from regbench.methods.components.unet import UNet


@pytest.mark.parametrize("shape", [(1, 2, 37, 29), (2, 2, 13, 17, 11)])
def test_output_has_the_input_grid_for_odd_sizes(shape):
    ndim = len(shape) - 2
    net = UNet(ndim, 2, ndim, encoder=(4, 8, 8), decoder=(8, 4), final=(4,))
    assert net(torch.rand(shape)).shape == (shape[0], ndim, *shape[2:])


def test_levels_and_channels_follow_the_configuration():
    net = UNet(3, 2, 3, encoder=(16, 32, 32, 32), decoder=(32, 32, 32), final=(16, 16))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    # 4 encoder + 3 decoder + 2 final + head; decoder inputs concatenate the skip (32 + 32, 32 + 32, 32 + 16).
    assert [c.out_channels for c in convs] == [16, 32, 32, 32, 32, 32, 32, 16, 16, 3]
    assert [c.in_channels for c in convs[4:7]] == [64, 64, 48]


def test_zero_head_starts_from_zero_and_gradients_reach_the_first_layer():
    net = UNet(2, 2, 2, encoder=(4, 8), decoder=(4,))
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    x = torch.rand(1, 2, 16, 12)
    assert not net(x).any()
    net.head.weight.data.normal_()
    net(x).square().sum().backward()
    assert net.encoder[0][0].weight.grad.abs().sum() > 0


def test_mismatched_decoder_is_refused():
    with pytest.raises(ValueError, match="len\\(decoder\\) == len\\(encoder\\) - 1"):
        UNet(2, 2, 2, encoder=(4, 8, 8), decoder=(8,))
