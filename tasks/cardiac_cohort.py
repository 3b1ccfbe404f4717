"""``cardiac_cohort``: end-diastole to end-systole of hearts that the conditional generative model
(``regbench.generative.cheart``) generates for a stratified design of clinical factors, so the benchmark can ask
whether a method registers old hearts as well as young ones, women's as well as men's.

The test subjects are drawn subgroup by subgroup: each sex x each age group (``cardiac_population.SUBGROUPS``:
20-40, 40-60, 60-80 years) gets an equal share of the test pairs, the covariates drawn within it as the phantom
population draws them (``cardiac_population.Covariates``: pressure rising with age). Training and validation
subjects come from the whole population. For each subject the model generates a cycle from a new latent
(``cheart.generate``) under the subject's covariates, redrawn until the heart is plausible (``plausible``: every
label at end-diastole and end-systole, an ejection fraction in ``EJECTION_RANGE``; when the latents came from the
N(0, I) prior, 40 % of the first draws at default scale were not, more at the extreme ages, which without the
check made those subgroups look harder for every method); the first frame (end-diastole) is the fixed image, the
frame nearest end-systole the moving one. Each subject's count of latents drawn is recorded beside its
covariates. Images come from the label maps by the phantom's intensity model
(balanced SSFP contrast, a smooth random background of the surrounding tissue, a one-voxel blur at the edges, a
coil bias field shared by both frames, Rician noise). There is no true displacement between generated frames, so
the task is scored as real data is, by its labels. Each subject's covariates are recorded in the dataset json under
``covariates`` (an extra key the official format ignores).

The model: the file ``model`` names (the workflow passes the one its ``generative`` rule trained; its settings
must be a study's whose short-axis slices have the task's shape), else a model trained here with the settings of
``regbench.generative.study``'s 2D study of that shape and the task's seed. A 3D+t model (the paper-scale study)
generates volumes, and the cohort takes each one's mid-ventricular slice (``mid_ventricular_slice``), as a
single-slice cine study would. The grid is the study's slice (2 mm voxels over 128 mm).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from regbench.errors import DatasetError
from regbench.image import Image, LabelMap
from regbench.pair import Case, CaseId
from regbench.tasks import synth
from regbench.tasks.cardiac import LABELS, TISSUE
from regbench.tasks.cardiac_population import (SUBGROUPS, Covariates, clinical_indices, cycle_phases,
                                               end_systole_frame, mid_ventricular_slice)
from regbench.tasks.cohort import Cohort
from regbench.tasks.generate import SyntheticData
from regbench.tasks.spec import Scale, TaskSpec

if TYPE_CHECKING:
    from regbench.generative.cheart import CHeartNet

# What the workflow gives this generator (keyword -> path under the run's results folder), that its datasets
# record covariates (so the workflow adds the subgroup analysis) and that they hold no true displacements.
WORKFLOW_INPUTS = {"model": "generative/cardiac/cheart.pt"}
RECORDS_COVARIATES = True
GROUNDTRUTH = False  # no true displacement between generated frames
BACKGROUND = (TISSUE["lung"], TISSUE["liver"])  # the range of the smooth tissue texture around the heart
INTENSITY = {1: TISSUE["blood"], 2: TISSUE["myocardium"], 3: TISSUE["blood"]}
EJECTION_RANGE = (0.2, 0.85)  # what a generated heart must eject to be kept (the phantom's: about 0.45-0.7)
MAX_DRAWS = 50  # latents tried per subject before the generation gives up


@dataclass(frozen=True)
class CohortSettings:
    """Image settings (``settings:`` in ``cardiac_cohort.yaml``), as ``cardiac_mr``'s.

    Attributes:
        contrast: relative spread of each tissue's intensity between subjects.
        bias_strength: the coil bias field lies in exp([-strength, strength]).
        noise: standard deviation of the Rician noise, relative to blood.
    """

    contrast: float
    bias_strength: float
    noise: float


def design(rng: np.random.Generator, cohort: Cohort) -> dict[int, Covariates]:
    """Each subject's covariates: training and validation subjects from the whole population, test subjects
    an equal share per sex and age group (in the order of ``SUBGROUPS``)."""
    if len(cohort.test) % len(SUBGROUPS):
        raise DatasetError("cardiac_cohort", f"test_pairs must be a multiple of {len(SUBGROUPS)} (one share per "
                                             f"sex and age group), got {len(cohort.test)}")
    drawn = {subject: Covariates.draw(rng) for subject in cohort.training + cohort.val}
    share = len(cohort.test) // len(SUBGROUPS)
    for index, subject in enumerate(cohort.test):
        male, ages = SUBGROUPS[index // share]
        drawn[subject] = Covariates.draw(rng, age=ages, male=male)
    return drawn


def plausible(cycle: np.ndarray, systole: int) -> bool:
    """Whether a generated cycle (frames, *S) is a heart the benchmark can score: every label at end-diastole
    and end-systole, and an ejection fraction of its LV cavity within ``EJECTION_RANGE``."""
    present = all((cycle[frame] == label).any() for frame in (0, systole) for label in LABELS)
    unit_voxels = (1.0,) * (cycle.ndim - 1)
    ejected = clinical_indices(cycle, unit_voxels, systole)["ejection_fraction"] if present else float("nan")
    return present and EJECTION_RANGE[0] <= ejected <= EJECTION_RANGE[1]


def generate_plausible(net: CHeartNet, people: list[Covariates], systole: int, seeds: Iterable[int], *,
                       short_axis: bool = True) -> tuple[np.ndarray, list[int]]:
    """One plausible cycle per person (``plausible``; with ``short_axis``, of a 3D model the mid-ventricular
    slice): round k decodes a new latent for every person with the k-th of ``seeds`` (the same seeds give
    the same latents whatever the conditions) and each person keeps the first plausible heart. The cycles (zeros
    for whom no round made one) and the round each person's heart came from (0: none)."""
    from regbench.generative import cheart

    cycles: np.ndarray | None = None
    rounds = [0] * len(people)
    for round_number, seed in enumerate(seeds, start=1):
        pending = [i for i, found in enumerate(rounds) if not found]
        if not pending:
            break
        made = cheart.generate(net, people, net.settings.frames, seed=seed)
        if short_axis and net.settings.ndim == 3:
            made = np.stack([mid_ventricular_slice(cycle) for cycle in made])
        cycles = np.zeros_like(made) if cycles is None else cycles
        for index in pending:
            if plausible(made[index], systole):
                cycles[index], rounds[index] = made[index], round_number
    return cycles, rounds


def label_image(rng: np.random.Generator, labels: np.ndarray, background: np.ndarray, contrast: dict[int, float],
                bias: np.ndarray, noise: float) -> np.ndarray:
    """An MR-like image of a label map: each label's intensity (the background's own texture), blurred over
    about one voxel, times the bias field, with Rician noise."""
    image = background.copy()
    for label, value in INTENSITY.items():
        image[labels == label] = value * contrast[label]
    blurred = ndimage.gaussian_filter(image, sigma=0.5, mode="nearest")
    return synth.rician_noise(rng, bias * blurred, sigma=noise).astype(np.float32)


def generate(spec: TaskSpec, scale: Scale, rng: np.random.Generator, *,
             model: str | Path | None = None) -> SyntheticData:
    """The subjects of ``scale``, generated by the model (see the module docstring)."""
    from regbench.generative import cheart, study  # torch only where the cohort is made

    if spec.labels != LABELS:
        raise DatasetError(spec.path or spec.name, f"labels must be those of the cardiac phantom: {LABELS}")
    if model is not None:
        net = study.load_model(model)
        plan = study.study_of(net.settings)
        if plan is None or plan.plane.shape != tuple(scale.shape):
            raise DatasetError(model, f"holds a model of other settings than a generative study's whose short-axis "
                                      f"slices are {tuple(scale.shape)}")
    else:
        plan = study.study_for_size(scale.shape, task=spec.name)
        population = study.phantom_cohort(plan, spec.seed, "train")
        net = cheart.train(plan.model, population.sequences, population.covariates, seed=spec.seed)[0]
    settings = spec.settings_as(CohortSettings)
    grid = plan.plane
    cohort = Cohort.of(scale, pairing="paired", modalities=tuple(spec.modalities), task=spec.name)
    people = design(rng, cohort)
    subjects = list(cohort.subjects)
    frames = net.settings.frames
    systole = end_systole_frame(cycle_phases(frames))
    seeds = (int(rng.integers(2**31)) for _ in range(MAX_DRAWS))
    cycles, draws = generate_plausible(net, [people[s] for s in subjects], systole, seeds)
    if not all(draws):
        raise DatasetError("cardiac_cohort", f"the generative model made no plausible heart in {MAX_DRAWS} draws "
                                             f"for {draws.count(0)} subjects; is it trained?")
    cases: dict[CaseId, Case] = {}
    for subject, cycle, subject_rng in zip(subjects, cycles, rng.spawn(len(subjects))):
        low, high = BACKGROUND
        background = low + (high - low) * 0.5 * (1 + synth.smooth_noise(subject_rng, grid.shape, sigma=3.0))
        contrast = {label: subject_rng.uniform(1 - settings.contrast, 1 + settings.contrast) for label in LABELS}
        bias = synth.bias_field(subject_rng, grid.shape, strength=settings.bias_strength)
        for case_id, labels in zip(cohort.cases(subject), (cycle[0], cycle[systole])):
            image = label_image(subject_rng, labels, background, contrast, bias, settings.noise)
            cases[case_id] = Case(case_id, Image(image, grid.affine), LabelMap(labels, grid.affine))
    return SyntheticData(cases, cohort.training_cases, cohort.test_cases, cohort.pairs("val"), cohort.pairs("test"),
                         {}, cohort.pairing,
                         covariates={s: {**people[s].as_dict(), "latents_drawn": n} for s, n in zip(subjects, draws)})
