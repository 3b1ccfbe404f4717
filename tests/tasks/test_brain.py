"""brain_mr: the template's parcellation, the grid that samples it, and subjects that move with their true fields.

Every task's labels are checked against its true fields in test_groundtruth.py; here the images, the geometry
and the parts particular to this generator.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from regbench.errors import DatasetError
from regbench.tasks import brain
from regbench.tasks.phantom import Grid
from regbench.tasks.spec import Scale, load_spec

DEFAULT, SMOKE = (64, 76, 64), (32, 38, 32)


@pytest.fixture(scope="module")
def template() -> brain.Template:
    return brain.load_template()


@pytest.fixture(scope="module")
def spec():
    return load_spec("brain_mr")


@pytest.fixture(scope="module")
def quiet(spec):
    """The task without intensity variation, bias or noise: every subject is the template, deformed."""
    settings = {**spec.settings, "gain": [1, 1], "gamma": [1, 1], "bias_strength": 0.0, "noise": 0.0}
    return dataclasses.replace(spec, settings=settings)


def _mni_centroid(template: brain.Template, label: int) -> np.ndarray:
    index = np.argwhere(template.labels == label).mean(0)
    return template.affine[:3, :3] @ index + template.affine[:3, 3]


@pytest.mark.parametrize(("label", "low", "high"), [
    # MNI mm bounds (x right, y anterior, z superior) around where atlases put each region's centre.
    (1, (-60, 5, -20), (-10, 70, 60)),     # left frontal: anterior
    (4, (10, -100, -10), (60, -20, 70)),   # right parieto-occipital: posterior
    (5, (-70, -50, -40), (-30, 10, 5)),    # left temporal: lateral and low
    (10, (10, -25, -10), (30, 10, 20)),    # right striatum and thalamus, about (20, -8, 5)
    (11, (-5, -40, 0), (5, 10, 30)),       # ventricles, both sides: on the midline
    (12, (-10, -80, -50), (10, -45, -20)),  # cerebellum
    (13, (-5, -45, -50), (5, -15, -10)),   # brainstem
])
def test_regions_lie_where_the_anatomy_is(template, label, low, high):
    centroid = _mni_centroid(template, label)
    assert np.all(centroid > low) and np.all(centroid < high), f"{brain.LABELS[label]} centred at {centroid}"


def test_parcellation_has_every_region_and_mirrors_left_onto_right(template):
    # The 2009a "sym" template is mirror-symmetric about MNI x = 0 and every rule treats x and -x alike, so
    # each left region has the volume of its right twin (x > 0; the x = 0 plane is assigned right). Only the
    # majority filter's ties (the lower, left label wins) break the symmetry: 0.9 % for deep grey matter.
    labels = template.labels
    assert set(np.unique(labels)) == {0, *brain.LABELS}
    midline = int(round(-template.affine[0, 3]))  # voxel of MNI x = 0 on the 1 mm axis-aligned grid
    for left in (1, 3, 5, 7, 9):
        left_volume = np.sum(labels[:midline] == left)
        right_volume = np.sum(labels[midline + 1:] == left + 1)
        assert right_volume == pytest.approx(left_volume, rel=0.015), brain.LABELS[left]


def test_grid_covers_the_field_of_view_centred_on_the_brain(spec, template):
    data = brain.generate(spec, spec.scale("smoke"), np.random.default_rng(0))
    case = next(iter(data.cases.values()))
    assert case.image.shape == SMOKE
    # 160 x 192 x 160 mm over 32 x 38 x 32 voxels.
    assert case.image.spacing == pytest.approx((5.0, 192 / 38, 5.0))
    centre_voxel = np.append((np.asarray(SMOKE) - 1) / 2, 1.0)
    np.testing.assert_allclose((case.image.affine @ centre_voxel)[:3], template.centre_mm, atol=1e-9)


def test_undeformed_subject_is_the_template_sampled_on_the_grid(quiet, template):
    settings = {**quiet.settings, "velocity_amplitude_mm": 0.0}
    data = brain.generate(dataclasses.replace(quiet, settings=settings), Scale(SMOKE, 0, 1, 0),
                          np.random.default_rng(0))
    (pair, truth), = data.groundtruth.items()
    fixed, moving = data.cases[pair.fixed], data.cases[pair.moving]
    assert np.abs(truth.data).max() == 0.0
    np.testing.assert_array_equal(fixed.image.data, moving.image.data)
    # Independently: each voxel's MNI position by the written affine, as a template voxel, nearest label.
    voxels = np.stack(np.meshgrid(*[np.arange(n) for n in SMOKE], indexing="ij"), axis=-1)
    mni = voxels @ fixed.image.affine[:3, :3].T + fixed.image.affine[:3, 3]
    index = np.moveaxis(mni - template.affine[:3, 3], -1, 0)  # the template is 1 mm and axis-aligned
    expected = ndimage.map_coordinates(template.labels, index, order=0, mode="constant")
    # The z positions fall exactly halfway between template voxels, where float rounding may pick either.
    assert np.mean(fixed.labels.data == expected) > 0.99
    np.testing.assert_array_equal(fixed.mask.data, fixed.labels.data > 0)


def test_images_move_with_the_true_field(quiet):
    # Without contrast changes or noise, the moving image warped by the true field is the fixed image up to
    # linear interpolation on the 2.5 mm grid (measured 0.015 of the intensity range; identity leaves 0.13).
    data = brain.generate(quiet, Scale(DEFAULT, 0, 1, 0), np.random.default_rng(0))
    (pair, truth), = data.groundtruth.items()
    fixed, moving = data.cases[pair.fixed], data.cases[pair.moving]
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in DEFAULT], indexing="ij"))
    warped = ndimage.map_coordinates(moving.image.data, grid + np.moveaxis(truth.data, -1, 0), order=1)
    brain_voxels = fixed.mask.data > 0
    error = np.abs(warped - fixed.image.data)[brain_voxels].mean()
    initial = np.abs(moving.image.data - fixed.image.data)[brain_voxels].mean()
    assert error < 0.03 and error < 0.2 * initial, (error, initial)


def test_one_seed_gives_the_same_deformation_at_every_scale(spec):
    # Velocities are drawn and integrated on the 5 mm control grid whatever the scale, and the smoke grid is
    # that control grid: the default field is the smoke field interpolated, to float32 precision.
    smoke = brain.generate(spec, Scale(SMOKE, 0, 1, 0), np.random.default_rng(5))
    default = brain.generate(spec, Scale(DEFAULT, 0, 1, 0), np.random.default_rng(5))
    (coarse,), (fine,) = smoke.groundtruth.values(), default.groundtruth.values()
    fov = tuple(spec.settings["field_of_view_mm"])
    resampler = brain.FieldResampler(Grid.covering(SMOKE, fov), Grid.covering(DEFAULT, fov))
    expected = np.moveaxis(resampler.displacement(np.moveaxis(coarse.data, -1, 0).astype(np.float64)), 0, -1)
    np.testing.assert_allclose(fine.data, expected, atol=1e-5)
    assert np.abs(fine.data).max() > 3  # a real deformation, in voxels


def test_field_resampler_reproduces_linear_fields_and_converts_units():
    fov = (40.0, 30.0)
    control, grid = Grid.covering((8, 6), fov), Grid.covering((16, 15), fov)
    resampler = brain.FieldResampler(control, grid)
    # A linear function of position is interpolated exactly between the outermost control voxel centres.
    linear = np.tensordot([0.3, -0.7], control.points_mm(), axes=1)[None] + 2.0
    values = resampler.values(linear)[0]
    expected = np.tensordot([0.3, -0.7], grid.points_mm(), axes=1) + 2.0
    inner = (slice(1, -1), slice(1, -1))  # the outermost task voxels lie beyond them: edge values repeat
    np.testing.assert_allclose(values[inner], expected[inner], atol=1e-12)
    assert not np.allclose(values[0], expected[0])
    # One control voxel (5 mm) is two task voxels (2.5 mm) along axis 0 and 2.5 along axis 1 (5 / 2).
    shift = np.ones((2, 8, 6))
    np.testing.assert_allclose(resampler.displacement(shift)[:, 0, 0], [2.0, 2.5])


def test_settings_and_labels_that_do_not_fit_are_errors_naming_the_yaml(spec):
    incomplete = dataclasses.replace(spec, settings={k: v for k, v in spec.settings.items() if k != "noise"})
    with pytest.raises(DatasetError, match="brain_mr.yaml.*noise"):
        brain.generate(incomplete, spec.scale("smoke"), np.random.default_rng(0))
    relabelled = dataclasses.replace(spec, labels={**spec.labels, 13: "pons"})
    with pytest.raises(DatasetError, match="brain_mr.yaml: labels must be"):
        brain.generate(relabelled, spec.scale("smoke"), np.random.default_rng(0))
