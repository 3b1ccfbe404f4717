"""The study's outputs: both models saved and loadable as trained, loss logs, the evaluation table on disk
(determinism: training and generation repeat for a seed, tests/regbench/generative/test_cheart.py)."""

from __future__ import annotations

import pandas as pd

from regbench.generative.cheart import CHeartSettings, complete
from regbench.generative.evaluation import MODELS, draw_cohort
from regbench.generative.study import EVALUATION_FILE, LOSS_FILE, MODEL_FILE, STUDIES, Study, load_model, run
from regbench.tasks.cardiac import CardiacSettings
from regbench.tasks.spec import load_spec


def test_outputs_are_written_and_the_models_load(smoke_study):
    table, out = smoke_study
    pd.testing.assert_frame_equal(pd.read_csv(out / EVALUATION_FILE), table)
    study = STUDIES["smoke"]
    cohort = draw_cohort(9, load_spec("cardiac_mr").settings_as(CardiacSettings), study.grid, study.model.frames,
                         subjects=2)
    for name, conditioned in MODELS.items():
        net = load_model(out / MODEL_FILE.format(model=name))
        assert net.settings.conditioned == conditioned and net.settings == study.model.__class__(
            **{**study.model.as_dict(), "conditioned": conditioned})
        losses = pd.read_csv(out / LOSS_FILE.format(model=name))
        assert list(losses.columns) == ["step", "loss", "cross_entropy", "kl"]
        assert len(losses) == study.model.steps
        assert losses["cross_entropy"].tail(20).mean() < losses["cross_entropy"].head(20).mean()
        predicted = complete(net, cohort.sequences[:, 0], cohort.covariates, study.model.frames)
        assert predicted.shape == cohort.sequences.shape


def test_a_3d_study_trains_and_is_evaluated_like_a_2d_one(tmp_path):
    # a small stand-in for the paper study (64^3, CHeart's 3D+t): 16^3 volumes of 4 frames
    small = Study(12, 4, 2, 128.0, CHeartSettings(size=16, ndim=3, frames=4, channels=(8, 16), latent=4, hidden=32,
                                                  steps=60, batch=4, lr=3e-3))
    table = run(small, tmp_path)
    assert set(table["analysis"]) == {"completion", "generation", "ageing"}
    dice = table.query("analysis == 'completion' and measure == 'dice' and group == 'later frames'")
    assert set(dice["model"]) == {"cheart", "unconditioned", "copy_first"} and dice["value"].between(0, 1).all()
    net = load_model(tmp_path / MODEL_FILE.format(model="cheart"))
    assert net.settings.ndim == 3
    losses = pd.read_csv(tmp_path / LOSS_FILE.format(model="cheart"))
    assert losses["cross_entropy"].tail(10).mean() < losses["cross_entropy"].head(10).mean()
