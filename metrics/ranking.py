"""Learn2Reg ranking: per-metric significance ranks, a geometric mean per task, a mean across tasks.

The scheme of the official notebooks (MDL-UzL/L2R ``ranking/``, "based on the Medical Decathlon"):

1. For each ranked metric, every method contributes one sample set: all (case x label) values for DSC and
   HD95, all keypoints of all cases for TRE, one value per case for SDlogJ and runtime. Missing and invalid
   values are substituted first (``metrics.substitutes``).
2. Method i *beats* method j when ``scipy.stats.ranksums(x_i, x_j)`` (the Wilcoxon rank-sum test, unpaired;
   the notebooks' readme says "signed rank" but the code uses ``ranksums``) has a positive statistic and
   p < 0.05, with lower-is-better metrics negated first.
3. Methods are ordered by how many methods beat them and mapped onto ``linspace(0.1, 1, N)`` (N methods,
   1 for the best); methods beaten equally often share the average of their places. One method alone
   scores 0.1, as the notebooks' formula gives.
4. The task score is the geometric mean of the metric rank scores; a method absent from a task scores 0.1.
5. The overall leaderboard is the mean of the task scores.

Robustness metrics ("DSC30", "TRE30") keep the hardest 30 % of the samples (``round(0.3 * n)``), chosen once
by the initial (identity) result: the lowest initial Dice, the largest initial TRE. The initial entry is
ranked with the others (it changes N, as in the notebooks) but its SDlogJ and runtime count as missing.

Where the notebooks disagree, regbench uses one rule per task type (``ranking_scheme``):

- label tasks (Dice): DSC, DSC30, HD95, SDlogJ, and runtime when measured (OASIS, AbdomenMRCT notebooks);
  further official metrics (e.g. ThoraxCBCT's TRE_kp) count once each.
- keypoint tasks (no Dice): TRE, TRE30 on the landmarks if there are any, else on the keypoints; the other
  TRE once; SDlogJ; runtime when measured. The LungCT notebook counts TRE twice (``rank_all[:, 0]`` and
  ``[:, 1]`` both hold it) and its "without runtime" score divides three ranks by 5; the ThoraxCBCT
  snapshot computes SDlogJ twice (the 5th rank, named ``rank_tre``); NLST's TRE30 keeps the 300 *easiest*
  landmarks (``argsort(initial)[:300]``) while LungCT keeps the hardest 30 per case: each metric counts once
  here and TRE30 always keeps the hardest, pooled over all cases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from regbench.metrics.substitutes import KIND_OF_NAME, RUNTIME, TaskKind, missing_value, substitute, task_kind

P_THRESHOLD = 0.05
RANK_RANGE = (0.1, 1.0)
HARDEST_FRACTION = 0.3
MISSING_TASK_SCORE = 0.1
INITIAL = "initial"


@dataclass(frozen=True)
class RankedMetric:
    """One column of a task's ranking.

    Attributes:
        name: the rank column (``DSC30``).
        metric: the metric it draws samples from (``DSC``), as named in the metrics tables.
        higher_is_better: True for Dice only.
        hardest: keep only this fraction of the samples, the hardest for the initial result; None keeps all.
    """

    name: str
    metric: str
    higher_is_better: bool
    hardest: float | None = None


def ranking_scheme(metrics: Sequence[str], *, runtime: bool = True) -> list[RankedMetric]:
    """The ranked metrics of a task whose tables hold ``metrics`` (see the module docstring)."""
    present = [m for m in KIND_OF_NAME if m in metrics]
    kind = task_kind({KIND_OF_NAME[m] for m in present})
    scheme: list[RankedMetric] = []
    tre = [m for m in ("TRE_lm", "TRE_kp") if m in present]
    primary = "DSC" if kind == "labels" else (tre[0] if tre else None)
    if primary is not None:
        scheme += [RankedMetric(primary, primary, primary == "DSC"),
                   RankedMetric(f"{primary}30", primary, primary == "DSC", HARDEST_FRACTION)]
    scheme += [RankedMetric(m, m, False) for m in ("HD95", *tre) if m in present and m != primary]
    if "LogJacDetStd" in present:
        scheme.append(RankedMetric("LogJacDetStd", "LogJacDetStd", False))
    if runtime and RUNTIME in present:
        scheme.append(RankedMetric(RUNTIME, RUNTIME, False))
    return scheme


def beaten_counts(samples: np.ndarray) -> np.ndarray:
    """How many methods are significantly better than each method (higher samples are better).

    Args:
        samples: (N methods, S samples); ``ranksums`` compares rows pairwise.
    """
    count = len(samples)
    beaten = np.zeros(count, dtype=np.int64)
    for i in range(count):
        for j in range(count):
            if i != j:
                statistic, p_value = stats.ranksums(samples[i], samples[j])
                beaten[j] += bool(statistic > 0 and p_value < P_THRESHOLD)
    return beaten


def smallest_p_value(samples: int) -> float:
    """The smallest two-sided p the rank-sum test can give two methods with ``samples`` values each: that of
    perfectly separated samples. Below ``P_THRESHOLD`` only from ``separating_samples()`` values on."""
    return float(stats.ranksums(np.arange(samples) + samples, np.arange(samples)).pvalue)


def separating_samples() -> int:
    """The fewest values per method with which the rank-sum test can find p < ``P_THRESHOLD`` (3 at 0.05):
    with fewer, no two methods can be told apart and every method shares the same rank score."""
    samples = 1
    while smallest_p_value(samples) >= P_THRESHOLD:
        samples += 1
    return samples


def rank_scores(beaten: np.ndarray) -> np.ndarray:
    """Rank scores on ``linspace(0.1, 1, N)``: fewer methods beating you is better; ties share the average.

    Equal to the notebooks' ``rankscore_avgtie(-beaten)``: the average of linspace values over tied places is
    the linspace value at their average place, which ``rankdata(..., 'average')`` gives.
    """
    count = len(beaten)
    low, high = RANK_RANGE
    if count == 1:
        return np.array([low])  # linspace(0.1, 1, 1) is [0.1]
    places = stats.rankdata(-np.asarray(beaten), method="average") - 1  # 0 = worst
    return low + (high - low) * places / (count - 1)


def _hardest(initial: np.ndarray, fraction: float, higher_is_better: bool) -> np.ndarray:
    """Indices of the hardest ``round(fraction * n)`` samples for the initial result (stable order)."""
    order = np.argsort(initial if higher_is_better else -initial, kind="stable")
    return order[: round(fraction * len(initial))]


def metric_samples(table: pd.DataFrame, metric: str, methods: Sequence[str], kind: TaskKind) -> np.ndarray:
    """(methods, samples) of one metric, aligned on (pair, label); absent or non-finite values substituted.

    Args:
        table: long metrics table with columns method, pair, label, metric, value (``metrics.csv`` rows
            of every method, plus a ``method`` column).
    """
    rows = table[table["metric"] == metric]
    wide = rows.set_index(["pair", "label", "method"])["value"].unstack("method").sort_index()
    values = wide.reindex(columns=list(methods)).to_numpy(dtype=np.float64).T
    return substitute(values, KIND_OF_NAME[metric], kind)


def rank_task(table: pd.DataFrame, *, scheme: Sequence[RankedMetric] | None = None,
              initial: str = INITIAL) -> pd.DataFrame:
    """Rank the methods of one task.

    Args:
        table: long metrics table (method, pair, label, metric, value) of every method on this task.
        scheme: the ranked metrics (default: ``ranking_scheme`` of the metrics present).
        initial: the method holding the initial (identity) result; it picks the hardest samples for the
            robustness metrics and is ranked with SDlogJ and runtime counted as missing. Without it the
            robustness metrics are left out.

    Returns:
        One row per method, best first: ``<metric>`` (mean of the substituted samples, as the notebooks
        print), ``rank_<metric>`` (rank score), ``n_<metric>`` (how many samples per method the test compared),
        ``score`` (geometric mean) and ``place`` (1 = best).
    """
    table = table.assign(label=table["label"].fillna(-1))
    methods = sorted(table["method"].unique())
    metrics = list(table["metric"].unique())
    scheme = list(scheme if scheme is not None else ranking_scheme(metrics))
    kind = task_kind({KIND_OF_NAME[m] for m in metrics if m in KIND_OF_NAME})
    if initial not in methods:
        scheme = [s for s in scheme if s.hardest is None]
    if not scheme:
        raise ValueError(f"rank_task(): nothing to rank among the metrics {metrics}")
    result = pd.DataFrame(index=pd.Index(methods, name="method"))
    for ranked in scheme:
        samples = metric_samples(table, ranked.metric, methods, kind)
        if initial in methods and KIND_OF_NAME[ranked.metric] in ("sdlogj", "runtime"):
            samples[methods.index(initial)] = missing_value(KIND_OF_NAME[ranked.metric], kind)
        if ranked.hardest is not None:
            keep = _hardest(samples[methods.index(initial)], ranked.hardest, ranked.higher_is_better)
            samples = samples[:, keep]
        result[ranked.name] = samples.mean(axis=1)
        signed = samples if ranked.higher_is_better else -samples
        result[f"rank_{ranked.name}"] = rank_scores(beaten_counts(signed))
        result[f"n_{ranked.name}"] = samples.shape[1]
    ranks = result[[f"rank_{s.name}" for s in scheme]].to_numpy()
    result["score"] = np.exp(np.log(ranks).mean(axis=1))
    result = result.sort_values("score", ascending=False, kind="stable")
    result["place"] = result["score"].rank(ascending=False, method="min").astype(int)
    return result


def overall_leaderboard(task_ranks: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean task score per method across tasks (a task a method is absent from scores 0.1), best first.

    Returns:
        One row per method: a column per task with its score, ``score`` (the mean) and ``place``.
    """
    methods = sorted({m for ranks in task_ranks.values() for m in ranks.index})
    board = pd.DataFrame(index=pd.Index(methods, name="method"))
    for task, ranks in task_ranks.items():
        board[task] = ranks["score"].reindex(methods).fillna(MISSING_TASK_SCORE)
    board["score"] = board[list(task_ranks)].mean(axis=1)
    board = board.sort_values("score", ascending=False, kind="stable")
    board["place"] = board["score"].rank(ascending=False, method="min").astype(int)
    return board
