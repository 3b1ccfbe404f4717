"""The abdomen generator: its two tasks' layout, intensity models, deformations and settings checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import ndimage

from regbench.errors import DatasetError
from regbench.tasks import synth
from regbench.tasks.abdomen import TISSUES, Contrast, Variation
from regbench.tasks.generate import generate
from regbench.tasks.phantom import Grid
from regbench.tasks.spec import load_spec

LIVER, SPLEEN, RIGHT_KIDNEY, LEFT_KIDNEY, STOMACH, SPINE = range(1, 7)  # label ids of both task YAMLs


def test_abdomen_ct_pairs_different_patients_ct_without_masks(generated_task):
    task = generated_task("abdomen_ct", "smoke")
    assert task.description["modality"] == {"0": "CT"} and task.description["pairings"] == "unpaired"
    for split in ("val", "test"):
        for pair_id in task.pair_ids(split):
            assert pair_id.fixed.case != pair_id.moving.case
            assert pair_id.fixed.modality == pair_id.moving.modality == 0
            pair = task.load_pair(pair_id)
            assert pair.fixed.mask is None
            assert set(np.unique(pair.fixed.labels.data)) == {0, *range(1, 7)}
    assert all(entry["image"].startswith("./imagesTs/") for entry in task.description["test"])


def test_abdomen_mrct_pairs_each_patients_mr_with_its_ct_and_ships_body_masks(generated_task):
    task = generated_task("abdomen_mrct", "smoke")
    assert task.description["modality"] == {"0": "MR", "1": "CT"} and task.description["pairings"] == "paired"
    for pair_id in task.pair_ids("val") + task.pair_ids("test"):
        assert pair_id.fixed.case == pair_id.moving.case
        assert (pair_id.fixed.modality, pair_id.moving.modality) == (0, 1)
        assert pair_id.short_disp_stem is not None
        pair = task.load_pair(pair_id)
        for case in (pair.fixed, pair.moving):
            assert case.mask.data[case.labels.data > 0].all()  # every organ lies in the body
            assert case.mask.data[0, 0, 0] == 0  # a corner of the field of view is air


def test_mr_and_ct_order_tissues_differently(generated_task):
    # CT (portal-venous): kidney 150 HU above liver 60 HU; T1 MR: kidney 300 below liver 520.
    # Noise (20) and partial volume move medians by far less than these gaps.
    task = generated_task("abdomen_mrct", "smoke")
    pair = task.load_pair(task.pair_ids("test")[0])
    mr, ct = pair.fixed, pair.moving

    def median(case, label):
        return float(np.median(case.image.data[case.labels.data == label]))

    assert median(ct, RIGHT_KIDNEY) > median(ct, LIVER) + 50
    assert median(mr, RIGHT_KIDNEY) < median(mr, LIVER) - 100
    assert abs(median(ct, LIVER) - TISSUES["liver"][0]) < 20


def test_mr_noise_is_rician_and_ct_noise_gaussian(generated_task):
    # In air (signal 0) magnitude MR noise is Rayleigh: mean sigma * sqrt(pi / 2) = 20 * 1.2533 = 25.07,
    # never negative; CT air stays at -1000 HU with standard deviation sigma = 20.
    task = generated_task("abdomen_mrct", "smoke")
    pair = task.load_pair(task.pair_ids("test")[0])
    for case, mean, std in ((pair.fixed, 20 * np.sqrt(np.pi / 2), 20 * np.sqrt(2 - np.pi / 2)),
                            (pair.moving, -1000.0, 20.0)):
        air = ~ndimage.binary_dilation(case.mask.data > 0, iterations=2)  # away from the blurred body edge
        assert air.sum() > 1000
        assert abs(case.image.data[air].mean() - mean) < 1.5
        assert abs(case.image.data[air].std() - std) < 1.5
    assert pair.fixed.image.data.min() >= 0


def test_noise_free_rendering_is_the_tissue_table():
    tissue = np.arange(len(TISSUES)).reshape(1, 1, -1).repeat(2, axis=0)
    contrast = Contrast(noise=0.0, jitter=0.0, bias=0.0)
    for modality, column in (("CT", 0), ("MR", 1)):
        image = contrast.render(tissue, np.random.default_rng(0), modality=modality, psf_vox=0.0)
        np.testing.assert_allclose(image[0, 0], [values[column] for values in TISSUES.values()])
    assert TISSUES["fat"] == (-100.0, 900.0)  # darkest soft tissue in CT, brightest in T1 MR


def test_variation_velocity_integrates_to_its_affine():
    # rms 0: only the linear part. Scaling s along an axis is the velocity log(1 + s) x, whose exponential
    # moves x to (1 + s) x: a displacement of s x, here up to 0.1 * 15.5 voxels at the edge.
    grid = Grid.covering((32, 32, 32), (32.0, 32.0, 32.0))
    velocity = Variation(rms_mm=0.0, cell_mm=16.0, scaling=0.1).velocity_mm(np.random.default_rng(3), grid)
    scale = np.exp(velocity[:, 17, 17, 17] / grid.points_mm()[:, 17, 17, 17]) - 1
    assert np.all(np.abs(scale) <= 0.1)
    disp = synth.exp_velocity(grid.to_voxels(velocity))
    expected = scale.reshape(3, 1, 1, 1) * grid.points_mm()
    np.testing.assert_allclose(disp[:, 4:-4, 4:-4, 4:-4], expected[:, 4:-4, 4:-4, 4:-4], atol=0.02)


def test_translation_only_variation_is_a_constant_velocity():
    grid = Grid.covering((8, 8, 8), (64.0, 64.0, 64.0))
    velocity = Variation(rms_mm=0.0, cell_mm=32.0, translation_mm=5.0).velocity_mm(np.random.default_rng(4), grid)
    np.testing.assert_allclose(velocity, velocity[:, :1, :1, :1] * np.ones((1, 8, 8, 8)))
    assert np.all(np.abs(velocity[:, 0, 0, 0]) <= 5.0) and np.any(velocity[:, 0, 0, 0] != 0)


def test_every_scale_shows_the_same_subjects(generated_task):
    # The anatomy and the deformations are drawn in mm, independent of the grid: subject 1's liver has the
    # same volume at 8 mm (smoke) and 4 mm (default) voxels, up to the voxelisation of its surface.
    volumes = []
    for scale in ("smoke", "default"):
        task = generated_task("abdomen_ct", scale)
        labels = task.load_case(task.training_cases()[0]).labels
        volumes.append((labels.data == LIVER).sum() * np.prod(labels.spacing))
    assert volumes[0] == pytest.approx(volumes[1], rel=0.05)


def _edited_spec(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((Path(load_spec("abdomen_ct").path)).read_text())
    edit(raw)
    path = tmp_path / "abdomen_edited.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_label_the_phantom_does_not_draw_is_an_error_naming_the_yaml(tmp_path):
    path = _edited_spec(tmp_path, lambda raw: raw["labels"].update({7: "appendix"}))
    with pytest.raises(DatasetError, match=r"abdomen_edited.yaml: label 7 'appendix' is not a structure"):
        generate(load_spec(path), scale="smoke")


def test_a_modality_without_a_contrast_model_is_an_error_naming_the_yaml(tmp_path):
    path = _edited_spec(tmp_path, lambda raw: raw.update({"modalities": {0: "PET"}}))
    with pytest.raises(DatasetError, match=r"abdomen_edited.yaml: modality 'PET' needs a contrast model"):
        generate(load_spec(path), scale="smoke")


def test_an_unknown_setting_is_an_error_naming_the_yaml(tmp_path):
    path = _edited_spec(tmp_path, lambda raw: raw["settings"]["anatomy"].update({"shear": 0.1}))
    with pytest.raises(DatasetError, match=r"abdomen_edited.yaml: settings do not fit AbdomenSettings .*shear"):
        generate(load_spec(path), scale="smoke")
