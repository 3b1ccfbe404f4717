"""The model's evaluation: per-frame scores with known answers, phantom subjects re-rendered under other
covariates, and the table's analyses."""

from __future__ import annotations

import numpy as np
import pytest

from regbench.generative.evaluation import GAIN, GAIN_P, draw_cohort, frame_scores, indices_table, render
from regbench.tasks.cardiac import CardiacSettings
from regbench.tasks.cardiac_population import Covariates
from regbench.tasks.phantom import Grid
from regbench.tasks.spec import load_spec

SETTINGS = load_spec("cardiac_mr").settings_as(CardiacSettings)
GRID = Grid.covering((32, 32), (128.0, 128.0))


def test_frame_scores_of_a_perfect_and_of_a_shifted_prediction():
    truth = np.zeros((1, 2, 20, 20), np.uint8)
    truth[0, :, 5:15, 5:15] = 2
    truth[0, :, 7:13, 7:13] = 1
    truth[0, :, 2:4, 2:8] = 3
    shifted = np.roll(truth, 2, axis=-1)
    perfect = frame_scores(truth, truth, (1.0, 1.0))
    np.testing.assert_allclose(perfect["dice"], 1.0)
    np.testing.assert_allclose(perfect["hd95"], 0.0)
    moved = frame_scores(shifted, truth, (2.0, 2.0))
    assert (moved["dice"] < 1).all()
    np.testing.assert_allclose(moved["hd95"], 4.0)  # two voxels of 2 mm, for every label


def test_a_cohort_repeats_and_its_subjects_render_again_under_their_own_covariates():
    cohort = draw_cohort(3, SETTINGS, GRID, 4, subjects=3)
    again = draw_cohort(3, SETTINGS, GRID, 4, subjects=3)
    np.testing.assert_array_equal(cohort.sequences, again.sequences)
    assert cohort.sequences.shape == (3, 4, 32, 32)
    for sequence, seed, person in zip(cohort.sequences, cohort.seeds, cohort.covariates):
        np.testing.assert_array_equal(render(seed, SETTINGS, GRID, person, 4), sequence)


def test_an_older_subject_has_a_smaller_cavity_and_a_thicker_wall():
    cohort = draw_cohort(4, SETTINGS, Grid.covering((64, 64), (128.0, 128.0)), 4,
                         lambda rng: Covariates(30.0, 0, 120.0), subjects=4)
    older = np.stack([render(s, SETTINGS, Grid.covering((64, 64), (128.0, 128.0)), Covariates(80.0, 0, 120.0), 4)
                      for s in cohort.seeds])
    now, later = indices_table(cohort.sequences, (2.0, 2.0)), indices_table(older, (2.0, 2.0))
    assert (later["lv_ed_area"] < now["lv_ed_area"]).all()
    assert (later["wall_ed_mm"] > now["wall_ed_mm"]).all()


@pytest.mark.parametrize("analysis", ["completion", "generation", "ageing"])
def test_the_study_table_holds_every_analysis_for_every_model(smoke_study, analysis):
    table, _ = smoke_study
    part = table[(table["analysis"] == analysis) & ~table["measure"].isin([GAIN, GAIN_P])]
    expected = {"cheart", "unconditioned"} | ({"copy_first"} if analysis == "completion" else set())
    assert set(part["model"]) == expected
    assert part.groupby("model").size().nunique() == 1  # the same measures and groups for each model
    if analysis != "completion":  # the smoke models are barely trained: their values may be undefined, not these
        assert part.loc[part["group"].isin(["all", "+20 years"]), "phantom"].notna().all()


def test_completion_pairs_the_conditioned_model_with_its_ablation_per_subject(smoke_study):
    table, _ = smoke_study
    completion = table[table["analysis"] == "completion"]
    dice = completion[completion["measure"] == "dice"].set_index(["model", "group"])["value"]
    gains = completion[completion["measure"] == GAIN].set_index("group")["value"]
    p_values = completion[completion["measure"] == GAIN_P].set_index("group")["value"]
    assert set(gains.index) == set(p_values.index) == {"later frames", "diastole"}
    assert ((0 <= p_values) & (p_values <= 1)).all()
    # The mean of the paired gains is the gain of the means (every subject scores every frame).
    for span in gains.index:
        assert gains[span] == pytest.approx(dice[("cheart", span)] - dice[("unconditioned", span)])
