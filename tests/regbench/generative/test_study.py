"""The study's outputs: both models saved and loadable as trained, loss logs, the evaluation table on disk
(determinism: training and generation repeat for a seed, tests/regbench/generative/test_cheart.py)."""

from __future__ import annotations

import pandas as pd

from regbench.generative.cheart import complete
from regbench.generative.evaluation import MODELS, draw_cohort
from regbench.generative.study import EVALUATION_FILE, LOSS_FILE, MODEL_FILE, STUDIES, load_model
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
