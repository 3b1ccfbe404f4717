"""The claims table: what each seed paper claims that our tasks can test, checked on a run's own results.

A claim that one method is more accurate than another is tested per task on the samples Learn2Reg's ranking
compares, paired: each (pair, label) Dice, or each (pair, keypoint) TRE on a task with keypoints (lower being
better), of both methods; their means, and a two-sided Wilcoxon signed-rank test of the paired differences.
It **holds** when the claimed method is better on average and the test gives p < 0.05; it **does not hold**
otherwise (not better, or not separable). A claim that a method is *as accurate as* another holds when its
mean is at most ``margin`` worse (Dice 0.01 or 0.5 mm TRE, the size of the differences papers call
comparable), and a claim that it is *faster* compares the per-pair runtimes as accuracy is compared. With
fewer paired samples than a two-sided signed-rank test needs to reach p < 0.05 (six), a comparison is **not
testable here**, as it is where the run lacks a method, a task or the benchmark that measures the claim.

Claims come from the abstracts and digests in ``shared/seeds`` (each row names its paper); the numbers are
never typed in: ``claims_table`` computes every row from the metrics tables, the generative model's
evaluation and, for MAD's capture range, ``benchmarks/bench_mad_capture_range.py``'s table when the run's
folder holds one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from regbench.metrics.evaluate import CALIBRATION_ERROR
from regbench.metrics.leaderboard import scored_rows
from regbench.metrics.ranking import P_THRESHOLD
from regbench.metrics.substitutes import RUNTIME

HOLDS, FAILS, UNTESTED = "holds", "does not hold", "not testable here"
COLUMNS = ["paper", "claim", "task", "metric", "claimed", "claimed_value", "other", "other_value", "n", "p_value",
           "verdict", "why", "produced_by"]
ACCURACY = ("TRE_kp", "TRE_lm", "DSC")  # the accuracy a comparison uses, the first the task has (as ranked)
LOWER_IS_BETTER = {"TRE_kp", "TRE_lm", RUNTIME}
MARGINS = {"DSC": 0.01, "TRE_kp": 0.5, "TRE_lm": 0.5}  # "as accurate as": at most this much worse on average
CALIBRATION_LIMIT = 0.1  # mean coverage gap of a calibrated posterior's central intervals (CalibrationError)
WORKFLOW = "snakemake (rule claims)"
CAPTURE_BENCHMARK = "python benchmarks/bench_mad_capture_range.py --out <results>/mad_capture_range"


@dataclass(frozen=True)
class Comparison:
    """``claimed`` is better than (``kind`` better), as accurate as (``comparable``) or faster than
    (``faster``) ``other``, as ``paper`` claims in the words of ``claim``."""

    paper: str
    claim: str
    claimed: str
    other: str
    kind: str = "better"


VOXELMORPH, ANTS = "voxelmorph", "ants"
COMPARISONS: tuple[Comparison, ...] = (
    Comparison("VoxelMorph (Balakrishnan et al., TMI 2019)", "as accurate as ANTs SyN", VOXELMORPH, ANTS,
               "comparable"),
    Comparison("VoxelMorph (Balakrishnan et al., TMI 2019)", "orders of magnitude faster than ANTs SyN", VOXELMORPH,
               ANTS, "faster"),
    Comparison("GraDIRN (Qiu et al., 2022)", "state-of-the-art accuracy: more accurate than VoxelMorph", "gradirn",
               VOXELMORPH),
    Comparison("VR-Net (Jia et al., TMI 2022)", "more accurate than state-of-the-art deep learning methods "
               "(VoxelMorph)", "vrnet", VOXELMORPH),
    Comparison("VR-Net (Jia et al., TMI 2022)", "keeps the fast inference of deep learning: faster than an "
               "iterative method (iterative)", "vrnet", "iterative", "faster"),
    Comparison("CSAIN (Wang et al., 2023)", "outperforms the baseline approaches (VoxelMorph)", "csain", VOXELMORPH),
    Comparison("Bayesian registration (Grzech et al., MELBA 2022)", "as accurate as VoxelMorph", "bayesian",
               VOXELMORPH, "comparable"),
)


@dataclass(frozen=True)
class Ablation:
    """A claim about one of ``method``'s design choices, tested against a variant of it (config ``variants``: the
    method under other settings) whose settings include ``settings``. The variant undoes the choice (the method is
    claimed better), or, with ``variant_claimed``, makes it (the variant is claimed better)."""

    paper: str
    claim: str
    method: str
    settings: Mapping[str, object]
    variant_claimed: bool = False

    @property
    def described(self) -> str:
        """The settings as the config writes them."""
        return ", ".join(f"{k}: {v}" for k, v in self.settings.items())

    def comparisons(self, variants: Mapping[str, tuple[str, Mapping[str, object]]]) -> list[Comparison]:
        """One comparison per variant of the run that is this ablation, whatever the config names it."""
        found = []
        for name, (method, settings) in sorted(variants.items()):
            if method == self.method and all(settings.get(k) == v for k, v in self.settings.items()):
                claimed, other = (name, method) if self.variant_claimed else (method, name)
                found.append(Comparison(self.paper, f"{self.claim} (variant {name}: {self.described})", claimed,
                                        other))
        return found

    def untested(self) -> dict:
        return _row(Comparison(self.paper, self.claim, self.method, "-"), verdict=UNTESTED,
                    why=f"the run has no variant of {self.method} with {self.described} (config variants)")


ABLATIONS: tuple[Ablation, ...] = (
    Ablation("VR-Net (Jia et al., TMI 2022)", "the cascade of denoising and intensity-consistency layers makes "
             "its initial network more accurate", "vrnet", {"cascades": 0}),
    Ablation("CSAIN (Wang et al., 2023)", "tuning the regional regularisation weights on validation pairs makes "
             "it more accurate", "csain", {"tune": False}),
)
ADVCHAIN = Ablation("AdvChain (Chen et al., MedIA 2022)", "adversarial augmentation makes a network more robust: "
                    "more accurate under the worst perturbation chain found (robustness track)", VOXELMORPH,
                    {"augment": "adversarial"}, variant_claimed=True)
GRADIRN_SIZE = Comparison("GraDIRN (Qiu et al., 2022)", "fewer learnable parameters than VoxelMorph", "gradirn",
                          VOXELMORPH, "smaller")
IO_PAPER = "Learn2Reg (Hering et al., TMI 2023)"
IO_CLAIM = "instance optimisation improves a network's registration"


def claims_table(metrics: Mapping[str, pd.DataFrame], *, instance_rows: Mapping[str, str] | None = None,
                 capture_range: pd.DataFrame | None = None, generative: pd.DataFrame | None = None,
                 cohort_in_run: bool = False, parameters: Mapping[str, Mapping[str, int]] | None = None,
                 robustness: Mapping[str, pd.DataFrame] | None = None,
                 variants: Mapping[str, tuple[str, Mapping[str, object]]] | None = None) -> pd.DataFrame:
    """Every claim, one row per claim and task where it is tested (one row saying why where it is not).

    Args:
        metrics: task -> the long metrics table of every method on it (``leaderboard.load_metrics``).
        instance_rows: each ``<method>+io`` row of the run -> its method (``IO_CLAIM`` is tested on each).
        capture_range: ``bench_mad_capture_range.py``'s table, if the run's folder holds one.
        generative: the generative model's evaluation (``regbench.generative.evaluation``), if the run made one.
        cohort_in_run: whether the run has the cohort task (otherwise the generative claims say so).
        parameters: task -> method -> learnable parameters of the network the run registered with.
        robustness: task -> the robustness track's per-pair tables of its methods (``regbench.robustness``, with
            a ``method`` column), where the run has the track.
        variants: each variant row of the run -> its method and settings (config ``variants``): the ablations
            (``ABLATIONS``, ``ADVCHAIN``) are found among them by method and settings, not by name.
    """
    values = {task: samples(table) for task, table in metrics.items()}
    rows: list[dict] = []
    for comparison in COMPARISONS:
        rows += _compared(comparison, values)
    for ablation in ABLATIONS:
        rows += [r for c in ablation.comparisons(variants or {}) for r in _compared(c, values)] or [ablation.untested()]
    for row, method in (instance_rows or {}).items():
        rows += _compared(Comparison(IO_PAPER, IO_CLAIM, row, method), values)
    rows += _sizes(GRADIRN_SIZE, parameters or {})
    adversarial = {task: _adversarial_samples(table) for task, table in (robustness or {}).items()}
    tracked = [r for c in ADVCHAIN.comparisons(variants or {}) for r in _compared(c, adversarial)]
    rows += [{**row, "produced_by": WORKFLOW + " (rule robustness)"} for row in tracked] or [ADVCHAIN.untested()]
    rows += _calibration(values)
    rows.append(_capture_range(capture_range))
    rows += _generative(generative, cohort_in_run)
    return pd.DataFrame(rows, columns=COLUMNS)


def samples(table: pd.DataFrame) -> pd.Series:
    """The scored values of a long metrics table indexed by (method, metric, pair, label), the label -1 for a
    per-case metric: the samples a comparison pairs."""
    rows = scored_rows(table).assign(label=lambda t: t["label"].fillna(-1).astype(int))
    return rows.set_index(["method", "metric", "pair", "label"])["value"].sort_index()


def _adversarial_samples(table: pd.DataFrame) -> pd.Series:
    """The accuracy under each method's adversarial chain, per (pair, budget), indexed as ``samples`` indexes
    (the budget in the pair key), so an adversarial comparison pairs what an accuracy comparison pairs."""
    rows = table[(table["kind"] == "adversarial") & table["accuracy"].notna()]
    index = pd.MultiIndex.from_arrays([rows["method"], rows["metric"], rows["pair"] + " @ " + rows["budget"].astype(str),
                                       [-1] * len(rows)], names=["method", "metric", "pair", "label"])
    return pd.Series(rows["accuracy"].to_numpy(float), index=index).sort_index()


def _row(comparison: Comparison, **fields) -> dict:
    defaults = {"paper": comparison.paper, "claim": comparison.claim, "claimed": comparison.claimed,
                "other": comparison.other, "produced_by": WORKFLOW}
    return {**dict.fromkeys(COLUMNS), **defaults, **fields}


def _compared(comparison: Comparison, values: Mapping[str, pd.Series]) -> list[dict]:
    """The rows of one comparison: one per task where both methods ran, or one saying it was not tested."""
    tasks = [t for t, v in values.items() if {comparison.claimed, comparison.other} <= set(v.index.unique("method"))]
    if not tasks:
        return [_not_run_together(comparison)]
    return [_compared_on(comparison, task, values[task]) for task in tasks]


def _not_run_together(comparison: Comparison) -> dict:
    return _row(comparison, verdict=UNTESTED,
                why=f"the run has no task on which both {comparison.claimed} and {comparison.other} ran")


def _compared_on(comparison: Comparison, task: str, values: pd.Series) -> dict:
    metrics = set(values.index.unique("metric"))
    metric = RUNTIME if comparison.kind == "faster" else next((m for m in ACCURACY if m in metrics), None)
    if metric is None or metric not in metrics:
        return _row(comparison, task=task, verdict=UNTESTED, why=f"the task has none of {', '.join(ACCURACY)}")
    claimed, other = _per_pair(values, comparison.claimed, metric), _per_pair(values, comparison.other, metric)
    common = claimed.index.intersection(other.index)
    claimed, other = claimed[common].to_numpy(float), other[common].to_numpy(float)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    gain = sign * (claimed - other)  # > 0 where the claimed method does better
    row = _row(comparison, task=task, metric=metric, n=len(common),
               claimed_value=float(claimed.mean()) if len(common) else None,
               other_value=float(other.mean()) if len(common) else None)
    if 2 * 0.5 ** len(common) >= P_THRESHOLD:
        return {**row, "verdict": UNTESTED, "why": f"{len(common)} paired samples: too few to separate two methods "
                                                   "(a signed-rank test needs at least 6)"}
    if comparison.kind == "comparable":
        margin = MARGINS[metric]
        close = gain.mean() >= -margin
        return {**row, "verdict": HOLDS if close else FAILS,
                "why": f"mean {'at most' if close else 'more than'} {margin:g} {_unit(metric)} worse than the other's"}
    p_value = float(stats.wilcoxon(claimed, other).pvalue) if np.any(gain != 0) else 1.0
    holds = gain.mean() > 0 and p_value < P_THRESHOLD
    why = (f"{'better' if gain.mean() > 0 else 'not better'} on average"
           f"{', separated' if p_value < P_THRESHOLD else ', not separated'} by the signed-rank test")
    return {**row, "p_value": p_value, "verdict": HOLDS if holds else FAILS, "why": why}


def _per_pair(values: pd.Series, method: str, metric: str) -> pd.Series:
    """The samples of ``metric`` of ``method`` by (pair, label) (empty if the method has none)."""
    try:
        return values.xs((method, metric), level=("method", "metric"))
    except KeyError:
        return pd.Series(dtype=float)


def _unit(metric: str) -> str:
    return "Dice" if metric == "DSC" else "mm"


def _sizes(comparison: Comparison, parameters: Mapping[str, Mapping[str, int]]) -> list[dict]:
    """A claim of fewer learnable parameters, per task where both networks were trained or loaded."""
    rows = []
    for task, counts in parameters.items():
        if comparison.claimed in counts and comparison.other in counts:
            claimed, other = counts[comparison.claimed], counts[comparison.other]
            rows.append(_row(comparison, task=task, metric="learnable parameters", claimed_value=claimed,
                             other_value=other, verdict=HOLDS if claimed < other else FAILS,
                             why=f"{claimed / other:.2f} times the other's", produced_by=WORKFLOW + " (rule train)"))
    return rows or [_not_run_together(comparison)]


BAYESIAN = Comparison("Bayesian registration (Grzech et al., MELBA 2022)",
                      f"calibrated uncertainty: coverage of its central intervals within {CALIBRATION_LIMIT:g} of "
                      f"nominal on average", "bayesian", "")


def _calibration(values: Mapping[str, pd.Series]) -> list[dict]:
    """The Bayesian method's calibration error per task where the ground truth gives one."""
    rows = []
    for task, task_values in values.items():
        key = (BAYESIAN.claimed, CALIBRATION_ERROR)
        errors = _per_pair(task_values, *key)
        if len(errors):
            mean = float(errors.mean())
            rows.append(_row(BAYESIAN, task=task, metric=CALIBRATION_ERROR, claimed_value=mean,
                             n=len(errors), verdict=HOLDS if mean <= CALIBRATION_LIMIT else FAILS,
                             why=f"mean calibration error {mean:.3f} (limit {CALIBRATION_LIMIT:g})"))
    return rows or [_row(BAYESIAN, verdict=UNTESTED,
                         why="the run has no bayesian registration of a task with a true displacement")]


MAD = Comparison("MAD (Sideri-Lampretsa et al., 2023)", "a larger capture range than mutual information and NGF",
                 "MAD", "MI, NGF")


def _capture_range(table: pd.DataFrame | None) -> dict:
    """MAD's share of captured misalignments against MI's and NGF's, over the sizes beyond zero."""
    if table is None:
        return _row(MAD, verdict=UNTESTED, produced_by=CAPTURE_BENCHMARK,
                    why="the capture-range sweep is a benchmark, not part of the run: run it into the run's folder")
    rates = table[table["size"] > 0].groupby("method")["captured"].mean()
    others = [m for m in ("MI", "NGF") if m in rates.index]
    if "MAD" not in rates.index or not others:
        return _row(MAD, verdict=UNTESTED, produced_by=CAPTURE_BENCHMARK, why="the table lacks MAD, MI or NGF")
    best_other = max(others, key=lambda m: rates[m])
    holds = rates["MAD"] > rates[best_other]
    return _row(MAD, task="abdomen_mrct", metric="captured share", claimed_value=float(rates["MAD"]),
                other=best_other, other_value=float(rates[best_other]),
                n=int((table[table["method"] == "MAD"]["size"] > 0).sum()), verdict=HOLDS if holds else FAILS,
                why=f"MAD captures {rates['MAD']:.2f} of the misalignments, {best_other} (the better of "
                    f"{', '.join(others)}) {rates[best_other]:.2f}", produced_by=CAPTURE_BENCHMARK)


CHEART = Comparison("CHeart (Qiao et al., TMI 2023)", "the clinical conditions help: a sequence completed from "
                    "its first frame is more accurate with them than without (the ablation)", "cheart",
                    "unconditioned")
CHEART_GAIN, CHEART_GAIN_P = f"dice gain over {CHEART.other}", f"dice gain p over {CHEART.other}"


def _generative(table: pd.DataFrame | None, cohort_in_run: bool) -> list[dict]:
    """The conditional generative model's claim, from its evaluation table: the completion's Dice gain over the
    ablation, paired per test subject (``regbench.generative.evaluation.completion``)."""
    if table is None:
        why = "the run has no cardiac_cohort task (add it to config tasks)" if not cohort_in_run else \
            "the generative model's evaluation is missing"
        return [_row(CHEART, verdict=UNTESTED, why=why)]
    completion = table[table["analysis"] == "completion"]
    found = completion[completion["model"] == CHEART.claimed].set_index(["measure", "group"])["value"]
    dice = completion[(completion["measure"] == "dice")
                      & (completion["group"] == "later frames")].set_index("model")["value"]
    needed = [(CHEART_GAIN, "later frames"), (CHEART_GAIN_P, "later frames")]
    missing = {CHEART.claimed, CHEART.other} - set(dice.index)
    if missing or any(key not in found.index for key in needed):
        return [_row(CHEART, verdict=UNTESTED, why=f"the evaluation has no paired completion Dice of "
                                                   f"{CHEART.claimed} and {CHEART.other}")]
    gain, p_value = float(found[needed[0]]), float(found[needed[1]])
    holds = gain > 0 and p_value < P_THRESHOLD
    diastole = (f"; diastole {found[(CHEART_GAIN, 'diastole')]:+.4f} (p = {found[(CHEART_GAIN_P, 'diastole')]:.2g})"
                if (CHEART_GAIN, "diastole") in found.index and (CHEART_GAIN_P, "diastole") in found.index else "")
    return [_row(CHEART, task="cardiac_cohort", metric="completion Dice", claimed_value=float(dice[CHEART.claimed]),
                 other_value=float(dice[CHEART.other]), p_value=p_value, verdict=HOLDS if holds else FAILS,
                 why=f"mean Dice of the later frames {dice[CHEART.claimed]:.3f} with the conditions, "
                     f"{dice[CHEART.other]:.3f} without: gain {gain:+.4f} per test subject{diastole}",
                 produced_by=WORKFLOW + " with cardiac_cohort (rule generative)")]


def claims_markdown(table: pd.DataFrame, tasks: Sequence[str]) -> str:
    """The table as Markdown: one line per row, numbers rounded, what was not testable said once per claim."""
    lines = ["# Claims of the seed papers, checked on this run", "",
             f"Tasks of the run: {', '.join(tasks)}. A comparison pairs the samples the ranking compares (Dice "
             f"per pair and label, or TRE per keypoint; n) and holds when the claimed method is better on average "
             f"and a signed-rank test separates the two (p < {P_THRESHOLD}); see `metrics/claims.py`.", "",
             "| paper | claim | task | metric | claimed | other | n | p | verdict | why |",
             "|---|---|---|---|---|---|---:|---:|---|---|"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join([
            row.paper, row.claim, _text(row.task), _text(row.metric),
            f"{row.claimed} {_number(row.claimed_value)}".strip(), f"{row.other} {_number(row.other_value)}".strip(),
            _text(row.n if row.n is None or np.isnan(row.n) else int(row.n)), _number(row.p_value), f"**{row.verdict}**", row.why]) + " |")
    return "\n".join(lines) + "\n"


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _number(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if float(value).is_integer() and abs(float(value)) >= 100:  # a count (parameters), not a measurement
        return f"{int(float(value)):,}"
    return f"{value:.3g}" if abs(float(value)) < 0.01 else f"{value:.3f}"
