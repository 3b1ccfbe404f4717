"""metrics/landmarks.py: LUMIR's TRE between landmark centroids, on blobs with known positions."""

from __future__ import annotations

import numpy as np
import pytest

from regbench.metrics.landmarks import centroids, landmark_labels, landmark_tre_mm
from regbench.metrics.warp import warp_labels_nearest

SHAPE = (20, 18, 16)


def blobs(shift: tuple[int, ...] = (0, 0, 0)) -> np.ndarray:
    """Landmarks 3, 7 and 12 (not consecutive, as LUMIR's need not be): boxes of different sizes."""
    labels = np.zeros(SHAPE, dtype=np.int16)
    for label, start, size in ((3, (4, 5, 3), (2, 2, 2)), (7, (10, 3, 8), (3, 1, 2)), (12, (6, 11, 9), (1, 2, 3))):
        labels[tuple(slice(s + d, s + d + n) for s, d, n in zip(start, shift, size))] = label
    return labels


def test_centroids_are_the_mean_voxel_coordinates():
    found = centroids(blobs(), np.array([3, 7, 12, 20]))
    np.testing.assert_array_equal(found[:3], [[4.5, 5.5, 3.5], [11.0, 3.0, 8.5], [6.0, 11.5, 10.0]])
    assert np.isnan(found[3]).all()  # a label that does not occur
    np.testing.assert_array_equal(landmark_labels(blobs()), [3, 7, 12])


def test_identity_gives_zero():
    fixed = blobs()
    labels, errors = landmark_tre_mm(fixed, warp_labels_nearest(fixed, np.zeros((*SHAPE, 3))), (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(labels, [3, 7, 12])
    np.testing.assert_array_equal(errors, 0.0)


def test_a_translation_moves_every_landmark_by_its_length_in_mm():
    # The moving blobs sit t = (2, -1, 3) voxels from the fixed ones. A zero field leaves them there: every
    # error is |t * s| with s the fixed spacing, sqrt(3^2 + 1.2^2 + 6^2) mm. The field u = t maps them back.
    fixed, moving = blobs(), blobs((2, -1, 3))
    spacing = (1.5, 1.2, 2.0)
    _, errors = landmark_tre_mm(fixed, warp_labels_nearest(moving, np.zeros((*SHAPE, 3))), spacing)
    np.testing.assert_allclose(errors, np.sqrt(9 + 1.44 + 36), rtol=1e-15)
    back = np.broadcast_to(np.array([2.0, -1.0, 3.0]), (*SHAPE, 3))
    _, errors = landmark_tre_mm(fixed, warp_labels_nearest(moving, back), spacing)
    np.testing.assert_array_equal(errors, 0.0)


def test_a_lost_landmark_has_no_error():
    # Landmark 7 is absent from the moving map, so the warped map lacks it: NaN, as LUMIR's 0/0.
    moving = blobs()
    moving[moving == 7] = 0
    _, errors = landmark_tre_mm(blobs(), moving, (1.0, 1.0, 1.0))
    assert errors[0] == 0.0 and np.isnan(errors[1]) and errors[2] == 0.0


def test_rejects_mismatched_input():
    with pytest.raises(ValueError, match="do not match"):
        landmark_tre_mm(blobs(), blobs()[:-1], (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="do not match"):
        landmark_tre_mm(blobs(), blobs(), (1.0, 1.0))
