"""One command's worth of the conditional cardiac model: draw the phantom population, train the model and its
ablation without conditions, save both, evaluate them (``evaluation``) and write the table.

Sizes per scale (``STUDIES``): ``default`` trains on 512 subjects' 10-frame cycles of 64 x 64 label maps (2 mm
voxels over 128 mm around the heart) in a few minutes per model on 2 CPU cores; ``smoke`` is tiny, for tests;
``paper`` is 3D+t as CHeart's: 512 subjects' cycles of 64 x 64 x 64 label volumes (2 mm voxels, the ventricle of
``tasks.cardiac_volume``), a GPU's work (drawing the population alone is about 5 s per subject on one core).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from regbench import io
from regbench.errors import RegbenchError
from regbench.generative import cheart, evaluation
from regbench.tasks.cardiac import CardiacSettings
from regbench.tasks.phantom import Grid
from regbench.tasks.spec import load_spec

log = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.csv"
LOSS_FILE = "{model}_loss.csv"
MODEL_FILE = "{model}.pt"


@dataclass(frozen=True)
class Study:
    """What one scale draws and trains.

    Attributes:
        train_subjects, test_subjects: phantom subjects to train on and to evaluate on (never trained on).
        per_cell: subjects per sex and age group in the generation check (phantom and generated alike).
        field_of_view_mm: side of the square the label maps cover, centred on the phantom's origin.
        model: the network and its training.
    """

    train_subjects: int
    test_subjects: int
    per_cell: int
    field_of_view_mm: float
    model: cheart.CHeartSettings

    @property
    def grid(self) -> Grid:
        """The grid of the label maps (2D or 3D)."""
        return Grid.covering((self.model.size,) * self.model.ndim, (self.field_of_view_mm,) * self.model.ndim)

    @property
    def plane(self) -> Grid:
        """The grid of one short-axis slice (the label maps themselves in 2D)."""
        return Grid.covering((self.model.size,) * 2, (self.field_of_view_mm,) * 2)


STUDIES = {
    # smoke: 300 steps at a higher rate is the least after which every generated heart has an LV (measured: 120
    # steps left some empty) and completion beats copying the first frame (Dice 0.84 against 0.68)
    "smoke": Study(48, 8, 4, 128.0, cheart.CHeartSettings(size=32, frames=6, channels=(8, 16, 32), steps=300,
                                                          lr=3e-3)),
    "default": Study(512, 64, 100, 128.0, cheart.CHeartSettings()),
    # paper: CHeart's 3D+t, longer on smaller batches (a batch of 8 volume cycles is about 1 GB of activations)
    "paper": Study(512, 64, 100, 128.0, cheart.CHeartSettings(ndim=3, steps=4000, batch=8)),
}


def study_for_size(shape: tuple[int, ...], *, task: str) -> Study:
    """The 2D study whose label maps have ``shape`` (a task's grid at some scale)."""
    for study in STUDIES.values():
        if study.model.ndim == 2 and tuple(shape) == study.plane.shape:
            return study
    sizes = sorted({s.model.size for s in STUDIES.values() if s.model.ndim == 2})
    raise RegbenchError(f"task {task!r}: no generative study makes {tuple(shape)} label maps (sides: {sizes})")


def study_of(settings: cheart.CHeartSettings) -> Study | None:
    """The study that trains a model of ``settings``, if any."""
    return next((study for study in STUDIES.values() if study.model == settings), None)


def phantom_settings() -> CardiacSettings:
    """The cardiac phantom the population is drawn from (``cardiac_mr``'s settings)."""
    return load_spec("cardiac_mr").settings_as(CardiacSettings)


def phantom_cohort(study: Study, seed: int, part: str) -> evaluation.Cohort:
    """The study's ``train`` or ``test`` subjects for ``seed`` (disjoint streams of the one seed)."""
    stream, subjects = {"train": (1, study.train_subjects), "test": (2, study.test_subjects)}[part]
    return evaluation.draw_cohort(np.random.SeedSequence([seed, stream]), phantom_settings(), study.grid,
                                  study.model.frames, subjects=subjects)


def save_model(path: Path, net: cheart.CHeartNet) -> None:
    """The settings (plain values) and weights, loadable with ``weights_only``."""
    with io.atomic_path(path) as tmp:
        torch.save({"settings": net.settings.as_dict(), "state": net.state_dict()}, tmp)


def load_model(path: str | Path) -> cheart.CHeartNet:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    settings = saved["settings"]
    net = cheart.CHeartNet(cheart.CHeartSettings(**{**settings, "channels": tuple(settings["channels"])}))
    net.load_state_dict(saved["state"])
    return net.eval()


def run_study(scale: str, out_dir: str | Path, *, seed: int = 0, threads: int = 1) -> pd.DataFrame:
    """The study of ``scale`` (``STUDIES``), see ``run``."""
    return run(STUDIES[scale], out_dir, seed=seed, threads=threads)


def run(study: Study, out_dir: str | Path, *, seed: int = 0, threads: int = 1) -> pd.DataFrame:
    """Draw, train both models, save them with their loss logs, evaluate; the evaluation table, also written
    to ``out_dir / EVALUATION_FILE``."""
    out = Path(out_dir)
    torch.set_num_threads(threads)
    phantom = phantom_settings()
    grid, frames = study.grid, study.model.frames
    train_cohort, test_cohort = phantom_cohort(study, seed, "train"), phantom_cohort(study, seed, "test")
    nets = {}
    for name, conditioned in evaluation.MODELS.items():
        log.info("training %s on %d subjects (%d steps)", name, study.train_subjects, study.model.steps)
        net, losses = cheart.train(replace(study.model, conditioned=conditioned), train_cohort.sequences,
                                   train_cohort.covariates, seed=seed)
        save_model(out / MODEL_FILE.format(model=name), net)
        with io.atomic_path(out / LOSS_FILE.format(model=name)) as tmp:
            pd.DataFrame(losses, columns=["loss", "cross_entropy", "kl"]).rename_axis("step").to_csv(tmp)
        nets[name] = net
    rows = evaluation.completion(nets, test_cohort, tuple(grid.spacing))
    rows += evaluation.generation(nets, seed, phantom, grid, frames, study.per_cell)
    rows += evaluation.ageing(nets, test_cohort, phantom, grid)
    table = pd.DataFrame(rows)
    with io.atomic_path(out / EVALUATION_FILE) as tmp:
        table.to_csv(tmp, index=False)
    return table
