"""Percentile normalisation to [0, 1]."""

from __future__ import annotations

import torch

from regbench.methods.components.intensity import normalise_intensity


def test_maps_the_percentile_range_to_unit_interval_and_clips_outliers():
    # 0..999 plus one hot voxel: the 0.5 and 99.5 percentiles (nearest rank of 1001 values) are 5 and 995.
    values = torch.cat([torch.arange(1000.0), torch.tensor([1e6])]).view(1, 1, 7, 11, 13)
    out = normalise_intensity(values)
    assert out.min() == 0 and out.max() == 1
    flat = out.flatten()
    torch.testing.assert_close(flat[500], torch.tensor((500.0 - 5) / 990))


def test_constant_image_maps_to_zeros():
    assert not normalise_intensity(torch.full((1, 1, 6, 6), 3.0)).any()
