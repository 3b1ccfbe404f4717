"""The 3D cardiac phantom: a ventricle whose cavity closes before its epicardium towards the apex, that
shortens along its axis in systole as well as narrowing, and whose covariate effects hold as in the slice."""

from __future__ import annotations

import numpy as np
import pytest

from regbench.tasks.cardiac import CardiacSettings, Contraction, Heart
from regbench.tasks.cardiac_population import (END_SYSTOLE, Covariates, clinical_indices, draw_subject,
                                               mid_ventricular_slice)
from regbench.tasks.cardiac_volume import SHORTENING, LongAxis
from regbench.tasks.phantom import Grid
from regbench.tasks.spec import load_spec

SETTINGS = load_spec("cardiac_mr").settings_as(CardiacSettings)
GRID = Grid.covering((32, 32, 32), (128.0, 128.0, 128.0))  # 4 mm voxels
PHASES = np.array([0.0, END_SYSTOLE])


def _subject(seed: int, covariates: Covariates = Covariates(50.0, 0, 120.0)):
    return draw_subject(np.random.default_rng(seed), SETTINGS, GRID, covariates, PHASES, images=False)


def _axial_extent(mask: np.ndarray) -> tuple[int, int]:
    """Lowest and highest short-axis slice (array axis 2) holding the mask."""
    slices = np.flatnonzero(mask.any(axis=(0, 1)))
    return int(slices[0]), int(slices[-1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_ventricle_is_closed_at_the_apex_and_shortens_in_systole(seed):
    labels = _subject(seed).labels
    assert labels.shape == (2, 32, 32, 32) and set(np.unique(labels)) == {0, 1, 2, 3}
    cavity_low, cavity_high = _axial_extent(labels[0] == 1)
    wall_low, _ = _axial_extent(labels[0] == 2)
    assert wall_low < cavity_low  # the apical wall lies below the cavity's apex
    ed_length = cavity_high - cavity_low + 1
    es_low, es_high = _axial_extent(labels[1] == 1)
    shortened = 1 - (es_high - es_low + 1) / ed_length
    assert SHORTENING[0] - 0.1 < shortened < SHORTENING[1] + 0.1  # within a voxel at each end
    # every short-axis slice through the cavity has myocardium around it
    for z in range(cavity_low, cavity_high + 1):
        assert (labels[0][..., z] == 2).sum() > 0


def test_the_volume_ejects_more_than_a_slice_does():
    # long-axis shortening adds to the slice's ejection (an ejection fraction of about 0.6 in volume)
    subject = _subject(0)
    volume = clinical_indices(subject.labels, GRID.spacing, 1)["ejection_fraction"]
    middle = (subject.labels[:, :, :, 16] == 1).sum(axis=(1, 2))
    assert volume > 1 - middle[1] / middle[0] and 0.45 < volume < 0.8


def test_age_thickens_the_wall_of_the_3d_heart():
    young = clinical_indices(_subject(4, Covariates(25.0, 0, 120.0)).labels, GRID.spacing, 1)
    old = clinical_indices(_subject(4, Covariates(75.0, 0, 120.0)).labels, GRID.spacing, 1)
    assert old["wall_ed_mm"] > young["wall_ed_mm"] and old["lv_ed_area"] < young["lv_ed_area"]


def test_a_3d_subject_is_label_maps_only():
    with pytest.raises(ValueError, match="label maps only"):
        draw_subject(np.random.default_rng(0), SETTINGS, GRID, Covariates(50.0, 0, 120.0), PHASES)


def test_the_motion_is_continuous_across_the_base_plane():
    axis = LongAxis(base_mm=40.0, length_mm=85.0, shortening=0.15)
    heart_rng = np.random.default_rng(0)
    heart = Heart.draw(heart_rng, SETTINGS)
    contraction = Contraction.draw(heart_rng, heart, SETTINGS)
    z = np.array([39.9, 40.0, 40.1])
    points = np.stack([np.full(3, heart.centre[0] + 30.0), np.full(3, heart.centre[1]), z])
    velocity = axis.velocity(contraction, points)
    assert np.abs(np.diff(velocity, axis=1)).max() < 0.1


def test_the_mid_ventricular_slice_lies_halfway_along_the_cavity():
    labels = _subject(0).labels
    low, high = _axial_extent(labels[0] == 1)
    middle = mid_ventricular_slice(labels)
    np.testing.assert_array_equal(middle, labels[..., (low + high) // 2])
    assert middle.shape == (2, 32, 32) and set(np.unique(middle[0])) == {0, 1, 2, 3}
