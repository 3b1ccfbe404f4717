"""cardiac_cohort's design and images: an equal share of test pairs per sex and age group, labels rendered with
the phantom's contrast; a model of other settings is refused by name. (Its whole generation runs in
tests/tasks/test_determinism.py and tests/workflow/test_cohort_subgroups.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from regbench.errors import DatasetError, RegbenchError
from regbench.generative.cheart import CHeartNet, CHeartSettings
from regbench.generative.study import STUDIES, save_model, study_for_size, study_of
from regbench.tasks.cardiac import TISSUE
from regbench.tasks.cardiac_cohort import design, generate, label_image, plausible
from regbench.tasks.cardiac_population import SUBGROUPS
from regbench.tasks.cohort import Cohort
from regbench.tasks.spec import Scale, load_spec


def test_test_subjects_come_in_equal_shares_per_sex_and_age_group():
    cohort = Cohort.of(Scale((64, 64), 10, 2, 12), pairing="paired", modalities=(0, 1), task="cardiac_cohort")
    people = design(np.random.default_rng(0), cohort)
    assert set(people) == set(cohort.subjects)
    cells = [(people[s].male, int(people[s].age // 20)) for s in cohort.test]
    assert sorted(cells) == sorted((male, int(ages[0] // 20)) for male, ages in SUBGROUPS for _ in range(2))
    with pytest.raises(DatasetError, match="multiple of 6"):
        design(np.random.default_rng(0), Cohort.of(Scale((64, 64), 2, 1, 4), pairing="paired", modalities=(0, 1),
                                                   task="cardiac_cohort"))


def test_images_show_blood_bright_and_myocardium_dark():
    labels = np.zeros((32, 32), np.uint8)
    labels[8:24, 8:24] = 2
    labels[12:20, 12:20] = 1
    ones = {1: 1.0, 2: 1.0, 3: 1.0}
    image = label_image(np.random.default_rng(0), labels, np.full((32, 32), 0.3), ones, np.ones((32, 32)), 0.0)
    assert image[15, 15] == pytest.approx(TISSUE["blood"], abs=0.01)
    assert image[9, 9] == pytest.approx(TISSUE["myocardium"], abs=0.01)
    assert image[2, 2] == pytest.approx(0.3, abs=0.01)


def test_a_grid_no_study_makes_is_refused_by_name():
    assert study_for_size((64, 64), task="t").model.size == 64
    with pytest.raises(RegbenchError, match="task 't': no generative study makes \\(48, 48\\)"):
        study_for_size((48, 48), task="t")


def test_the_paper_scale_3d_model_makes_the_cohorts_short_axis_slices():
    # the paper study is CHeart's 3D+t; its mid-ventricular slices have the cohort's 64 x 64 shape
    paper = study_of(STUDIES["paper"].model)
    assert paper.model.ndim == 3 and paper.plane.shape == (64, 64) == study_for_size((64, 64), task="t").plane.shape


def test_a_model_of_no_studys_settings_is_refused_by_name(tmp_path):
    path = tmp_path / "odd.pt"
    save_model(path, CHeartNet(CHeartSettings(size=16, channels=(4, 8))))
    spec = load_spec("cardiac_cohort")
    with pytest.raises(DatasetError, match="odd.pt.*other settings than a generative study's"):
        generate(spec, spec.scales["smoke"], np.random.default_rng(0), model=path)


def test_only_a_heart_with_every_label_that_ejects_is_plausible():
    cycle = np.zeros((4, 32, 32), np.uint8)
    cycle[:, 4:28, 4:28] = 2
    cycle[:, 2:6, 2:30] = 3
    cycle[0, 10:22, 10:22] = 1  # 144 pixels at end-diastole
    cycle[2, 12:20, 12:20] = 1  # 64 at end-systole: ejects 0.56
    assert plausible(cycle, 2)
    no_rv = np.where(cycle == 3, 0, cycle)
    assert not plausible(no_rv, 2)
    grows = cycle.copy()
    grows[2, 9:23, 9:23] = 1  # the cavity grows in systole
    assert not plausible(grows, 2)
