"""The conditional cardiac model checked as its papers check theirs, on phantom subjects it never saw.

- **Sequence completion** (CHeart): the whole cycle from the first frame and the conditions; Dice (mean of LV
  cavity, myocardium, RV cavity) and HD95 (mm) per frame, over the later frames and over diastole (where age
  sets the filling), against copying the first frame into every frame and against the model trained without
  conditions, that one paired per subject (the mean gain in Dice and a two-sided Wilcoxon signed-rank p).
- **Generation** (CHeart): cohorts generated per condition cell (sex x age group, the covariates drawn as the
  phantom draws them within the cell; latents drawn alike in every cell; the plausible hearts, as
  ``cardiac_cohort`` keeps them) against phantom subjects of the same covariates: the Wasserstein distance of
  each clinical index per cell, and the effects of age and sex on each index (least squares on age, sex and pressure
  over all cells) against the phantom's.
- **Ageing** (the ageing-heart model): each test subject encoded, decoded at its age + ``AGEING_YEARS``
  (sex and pressure kept); the change of each index against the phantom's own change for that subject (the same
  random draws rendered at the other age).

Everything is one long table (``evaluation.csv``): analysis, model, measure, group, value and, where the
phantom gives one, the phantom's value. A value is NaN where the model's output leaves it undefined (no LV
cavity: no ejection fraction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance, wilcoxon

from regbench.generative import cheart
from regbench.metrics.hd95 import hd95_masks
from regbench.tasks.cardiac import LABELS, CardiacSettings
from regbench.tasks.cardiac_cohort import generate_plausible
from regbench.tasks.cardiac_population import (END_SYSTOLE, REFERENCE_AGE, SUBGROUPS, Covariates, clinical_indices,
                                               cycle_phases, draw_subject, early_filling_share, end_systole_frame)
from regbench.tasks.phantom import Grid

INDICES = ("lv_ed_area", "lv_es_area", "ejection_fraction", "myo_ed_area", "wall_ed_mm", "rv_ed_area",
           "early_filling")
AGEING_YEARS = 20.0
POOL = 5  # latents a generated cohort tries per person for a plausible heart
CONDITIONED, ABLATION = "cheart", "unconditioned"
MODELS = {CONDITIONED: True, ABLATION: False}  # model name -> conditioned
GAIN, GAIN_P = f"dice gain over {ABLATION}", f"dice gain p over {ABLATION}"  # completion, paired per subject


@dataclass(frozen=True)
class Cohort:
    """Subjects of the phantom population: their cycles (N, T, S, S), covariates, and the seed each one's heart
    and motion were drawn from (to render the same subject under other covariates)."""

    sequences: np.ndarray
    covariates: list[Covariates]
    seeds: list[np.random.SeedSequence]


def draw_cohort(seed: int | np.random.SeedSequence, settings: CardiacSettings, grid: Grid, frames: int,
                covariates: Callable[[np.random.Generator], Covariates] = Covariates.draw, *,
                subjects: int) -> Cohort:
    """``subjects`` phantom subjects whose covariates ``covariates`` draws; labels only."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    sequences, drawn, hearts = [], [], []
    for subject_seed in root.spawn(subjects):
        covariate_seed, heart_seed = subject_seed.spawn(2)
        person = covariates(np.random.default_rng(covariate_seed))
        sequences.append(render(heart_seed, settings, grid, person, frames))
        drawn.append(person)
        hearts.append(heart_seed)
    return Cohort(np.stack(sequences), drawn, hearts)


def render(seed: np.random.SeedSequence, settings: CardiacSettings, grid: Grid, covariates: Covariates,
           frames: int) -> np.ndarray:
    """The label cycle of the heart drawn from ``seed``, shaped by ``covariates``."""
    return draw_subject(np.random.default_rng(seed), settings, grid, covariates, cycle_phases(frames),
                        images=False).labels


def indices_table(sequences: np.ndarray, spacing: tuple[float, ...]) -> pd.DataFrame:
    """The clinical indices of each cycle, one row per subject."""
    return pd.DataFrame([{**clinical_indices(s, spacing), "early_filling": early_filling_share(s)}
                         for s in sequences]).reindex(columns=list(INDICES))


def frame_scores(predicted: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> pd.DataFrame:
    """Dice (mean over the labels) and HD95 (mm, mean over the labels present in both) of every frame of every
    subject: columns subject, frame, dice, hd95."""
    rows = []
    for subject, (mine, theirs) in enumerate(zip(predicted, truth)):
        for frame, (a, b) in enumerate(zip(mine, theirs)):
            dice, hd = [], []
            for label in LABELS:
                x, y = a == label, b == label
                total = x.sum() + y.sum()
                dice.append(2.0 * (x & y).sum() / total if total else 1.0)
                if x.any() and y.any():
                    hd.append(hd95_masks(y, x, spacing))
            rows.append({"subject": subject, "frame": frame, "dice": float(np.mean(dice)),
                         "hd95": float(np.mean(hd)) if hd else float("nan")})
    return pd.DataFrame(rows)


def _rows(analysis: str, model: str, measure: str, group: str, value: float,
          phantom: float = float("nan")) -> dict:
    return {"analysis": analysis, "model": model, "measure": measure, "group": group, "value": float(value),
            "phantom": float(phantom)}


def completion(nets: dict[str, cheart.CHeartNet], test: Cohort, spacing: tuple[float, ...]) -> list[dict]:
    """Dice and HD95 per frame, over the later frames and over diastole, of each model's completion and of
    copying the first frame; the conditioned model's Dice gain over its ablation, paired per subject."""
    frames = test.sequences.shape[1]
    predictions = {name: cheart.complete(net, test.sequences[:, 0], test.covariates, frames)
                   for name, net in nets.items()}
    predictions["copy_first"] = np.repeat(test.sequences[:, :1], frames, axis=1)
    spans = {"later frames": np.arange(1, frames), "diastole": np.flatnonzero(cycle_phases(frames) > END_SYSTOLE)}
    rows, per_subject = [], {}
    for name, predicted in predictions.items():
        scores = frame_scores(predicted, test.sequences, spacing)
        by_frame = scores.groupby("frame")[["dice", "hd95"]].mean()
        for measure in ("dice", "hd95"):
            rows += [_rows("completion", name, measure, f"frame {f}", v) for f, v in by_frame[measure].items()]
            rows += [_rows("completion", name, measure, span, by_frame[measure].loc[chosen].mean())
                     for span, chosen in spans.items()]
        per_subject[name] = {span: scores[scores["frame"].isin(chosen)].groupby("subject")["dice"].mean()
                             for span, chosen in spans.items()}
    if CONDITIONED in per_subject and ABLATION in per_subject:
        for span in spans:
            gain = per_subject[CONDITIONED][span] - per_subject[ABLATION][span]
            rows += [_rows("completion", CONDITIONED, GAIN, span, gain.mean()),
                     _rows("completion", CONDITIONED, GAIN_P, span, _signed_rank_p(gain))]
    return rows


def _signed_rank_p(differences: pd.Series) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences (1 when all are zero)."""
    return float(wilcoxon(differences).pvalue) if (differences != 0).any() else 1.0


def _effects(table: pd.DataFrame, covariates: Sequence[Covariates]) -> pd.DataFrame:
    """Change of each index per decade of age and in men, by least squares on age, sex and pressure over the
    subjects where the index is defined (the ejection fraction is not without a cavity); NaN with too few."""
    design = np.array([[1.0, (c.age - REFERENCE_AGE) / 10, c.male, c.systolic_bp / 10] for c in covariates])
    design = design.reshape(-1, 4)  # also without subjects
    effects = {}
    for index in table.columns:
        defined = np.isfinite(table[index].to_numpy())
        enough = defined.sum() > design.shape[1]
        found = (np.linalg.lstsq(design[defined], table[index].to_numpy()[defined], rcond=None)[0] if enough
                 else np.full(design.shape[1], np.nan))
        effects[index] = {"per decade": found[1], "in men": found[2]}
    return pd.DataFrame(effects).T


def _wasserstein(first: pd.Series, second: pd.Series) -> float:
    """The 1-Wasserstein distance between the defined values of two samples (NaN if either has none)."""
    first, second = first.dropna(), second.dropna()
    return wasserstein_distance(first, second) if len(first) and len(second) else float("nan")


def generation(nets: dict[str, cheart.CHeartNet], seed: int, settings: CardiacSettings, grid: Grid, frames: int,
               per_cell: int) -> list[dict]:
    """Generated cohorts per sex and age group against phantom cohorts of the same covariates. A generated cohort
    is what ``cardiac_cohort`` would keep: each person's first plausible heart (``plausible``) among ``POOL``
    latents (``cheart.generate``), drawn alike in every cell and for every model, so that cells differ only by
    their conditions (with fresh latents per cell, 100 hearts' mean LV area varied by a third between draws); the
    share kept is a row of its own."""
    spacing = tuple(grid.spacing)
    systole = end_systole_frame(cycle_phases(frames))
    seeds = [int(np.random.SeedSequence([seed, round_]).generate_state(1)[0]) for round_ in range(POOL)]
    rows = []
    truth_tables, truth_people = [], []
    model_tables: dict[str, list[pd.DataFrame]] = {name: [] for name in nets}
    model_people: dict[str, list[Covariates]] = {name: [] for name in nets}
    for cell, (male, ages) in enumerate(SUBGROUPS):
        group = f"{'male' if male else 'female'} {ages[0]:.0f}-{ages[1]:.0f}"
        truth = draw_cohort(np.random.SeedSequence([seed, cell]), settings, grid, frames,
                            lambda rng, m=male, a=ages: Covariates.draw(rng, age=a, male=m), subjects=per_cell)
        truth_table = indices_table(truth.sequences, spacing)
        truth_tables.append(truth_table)
        truth_people += truth.covariates
        for name, net in nets.items():
            hearts, rounds = generate_plausible(net, truth.covariates, systole, seeds, short_axis=False)
            kept = np.flatnonzero(rounds)
            generated = indices_table(hearts[kept], spacing)
            model_tables[name].append(generated)
            model_people[name] += [truth.covariates[i] for i in kept]
            rows.append(_rows("generation", name, "plausible share", group, len(kept) / per_cell))
            rows += [_rows("generation", name, f"{index} wasserstein", group,
                           _wasserstein(generated[index], truth_table[index])) for index in INDICES]
    truth_effects = _effects(pd.concat(truth_tables, ignore_index=True), truth_people)
    for name, tables in model_tables.items():
        effects = _effects(pd.concat(tables, ignore_index=True), model_people[name])
        rows += [_rows("generation", name, f"{index} {effect}", "all", effects.loc[index, effect],
                       truth_effects.loc[index, effect]) for effect in effects.columns for index in INDICES]
    return rows


def ageing(nets: dict[str, cheart.CHeartNet], test: Cohort, settings: CardiacSettings, grid: Grid) -> list[dict]:
    """Each model's predicted change of the indices AGEING_YEARS on, against the phantom's change."""
    frames = test.sequences.shape[1]
    spacing = tuple(grid.spacing)
    older = [replace(c, age=c.age + AGEING_YEARS) for c in test.covariates]
    truth_older = np.stack([render(s, settings, grid, c, frames) for s, c in zip(test.seeds, older)])
    truth_change = (indices_table(truth_older, spacing) - indices_table(test.sequences, spacing)).mean()
    rows = []
    for name, net in nets.items():
        now = indices_table(cheart.complete(net, test.sequences[:, 0], test.covariates, frames), spacing)
        later = indices_table(cheart.complete(net, test.sequences[:, 0], older, frames), spacing)
        change = (later - now).mean()
        rows += [_rows("ageing", name, f"{index} change", f"+{AGEING_YEARS:.0f} years", change[index],
                       truth_change[index]) for index in INDICES]
    return rows
