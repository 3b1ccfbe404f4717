"""metrics/hd95.py: HD95 with DeepMind surface-distance semantics (as the official evaluation calls it)."""

from __future__ import annotations

import numpy as np
import pytest
import surface_distance
from scipy import ndimage

from regbench.metrics.hd95 import hd95_masks, hd95_per_label

# The reference functions of surface-distance 0.1 use scipy's deprecated ndimage.filters namespace.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def cube(shape, start, side, label=1):
    labels = np.zeros(shape, dtype=np.int16)
    labels[tuple(slice(s, s + side) for s in start)] = label
    return labels


@pytest.mark.parametrize("k", [1, 2, 5, 9])
def test_cubes_shifted_by_k_voxels(k):
    # Cube faces across the shift are k apart; points of the side faces are at most k from the other cube's
    # surface. The two across-shift faces alone carry 2/6 of the area at distance k, so the 95th percentile,
    # in both directions, is k (in voxels; k * s along the shift axis in mm).
    # k = 9 exceeds the offset search radius (6 voxels) and exercises the distance-transform fallback.
    fixed = cube((30, 24, 24), (4, 6, 6), 10)
    warped = cube((30, 24, 24), (4 + k, 6, 6), 10)
    assert hd95_per_label(fixed, fixed, warped, [1])[0] == k
    assert hd95_per_label(fixed, fixed, warped, [1], spacing=(1.5, 0.8, 2.0))[0] == pytest.approx(1.5 * k)


def test_concentric_spheres_differ_by_their_radii():
    # Radii 10 and 7 voxels at 2 mm: |r1 - r2| = 6 mm, within one voxel (2 mm) for the voxelised surfaces.
    grid = np.linalg.norm(np.indices((40, 40, 40)) - 19.5, axis=0)
    outer, inner = (grid <= 10).astype(np.int16), (grid <= 7).astype(np.int16)
    assert abs(hd95_per_label(outer, outer, inner, [1], spacing=(2.0, 2.0, 2.0))[0] - 6.0) <= 2.0


def test_nan_and_inf_rules():
    fixed = cube((16, 16, 16), (2, 2, 2), 5, label=1) + cube((16, 16, 16), (9, 9, 9), 4, label=2)
    moving = cube((16, 16, 16), (2, 2, 2), 5, label=1) + cube((16, 16, 16), (9, 9, 9), 4, label=2)
    warped = cube((16, 16, 16), (2, 2, 2), 5, label=1)  # label 2 lost by the warp
    values = hd95_per_label(fixed, moving, warped, [1, 2, 3])
    assert values[0] == 0.0
    assert values[1] == np.inf  # present in fixed and moving, empty after warping
    assert np.isnan(values[2])  # absent from both


def random_masks(rng, shape, sigma):
    """Two smooth random masks covering 30-70 % of the grid (never empty: the reference needs surfaces)."""
    fields = [ndimage.gaussian_filter(rng.standard_normal(shape), sigma) for _ in range(2)]
    return tuple(f > np.quantile(f, rng.uniform(0.3, 0.7)) for f in fields)


@pytest.mark.parametrize("shape", [(26, 30, 22), (40, 36)])
def test_equals_deepmind_surface_distance_exactly(rng, shape):
    """Random smooth masks, isotropic and anisotropic spacing, some far apart (the fallback path)."""
    for trial in range(12):
        fixed, warped = random_masks(rng, shape, sigma=1.5 + trial % 3)
        if trial % 4 == 0:
            warped = np.roll(fixed, 8 + trial, axis=1)
        if trial % 3 == 0:
            fixed = np.asfortranarray(fixed)
        for spacing in [(1.0,) * len(shape), tuple(rng.uniform(0.5, 2.0, len(shape)))]:
            distances = surface_distance.compute_surface_distances(np.ascontiguousarray(fixed), warped, spacing)
            expected = surface_distance.compute_robust_hausdorff(distances, 95)
            assert hd95_masks(fixed, warped, spacing) == expected, (trial, spacing)


def test_per_label_crops_equal_whole_volume_computation(rng):
    fixed = rng.integers(0, 4, size=(24, 22, 20)).astype(np.int16)
    fixed = ndimage.median_filter(fixed, size=5)
    warped = np.roll(fixed, 2, axis=0)
    values = hd95_per_label(fixed, fixed, warped, [1, 2, 3])
    for i, label in enumerate([1, 2, 3]):
        assert values[i] == hd95_masks(fixed == label, warped == label)


@pytest.mark.parametrize("order", ["C", "F"])
def test_background_label_is_scored_as_surface_distance_scores_it(rng, order):
    # LUMIR's configs list label 0: its HD95 is that of the masks ``labels == 0``, as the official code
    # computes it with surface-distance.
    from surface_distance import compute_robust_hausdorff, compute_surface_distances

    fixed = ndimage.median_filter(rng.integers(0, 3, size=(16, 14, 12)).astype(np.int16), size=5)
    warped = np.roll(fixed, 2, axis=1)
    values = hd95_per_label(np.asarray(fixed, order=order), fixed, np.asarray(warped, order=order), [0, 2])
    for value, label in zip(values, [0, 2]):
        expected = compute_robust_hausdorff(compute_surface_distances(fixed == label, warped == label,
                                                                      np.ones(3)), 95.0)
        assert value == expected
    with pytest.raises(ValueError, match="non-negative"):
        hd95_per_label(fixed, fixed, warped, [-1])


@pytest.mark.parametrize("shape", [(9, 8, 7), (9, 8)])
def test_neighbour_codes_equal_the_official_kernel_correlation(rng, shape):
    # surface-distance correlates the mask, zero-padded by one voxel at the far end, with its 2^d kernel.
    from surface_distance import lookup_tables

    from regbench.metrics.hd95 import _neighbour_codes, _padded

    kernel = (lookup_tables.ENCODE_NEIGHBOURHOOD_3D_KERNEL if len(shape) == 3
              else lookup_tables.ENCODE_NEIGHBOURHOOD_2D_KERNEL)
    mask = rng.random(shape) > 0.5
    expected = ndimage.correlate(np.pad(mask, [(0, 1)] * len(shape)).astype(np.uint8), kernel, mode="constant")
    np.testing.assert_array_equal(_neighbour_codes(_padded(mask, (1,) * len(shape))), expected)
