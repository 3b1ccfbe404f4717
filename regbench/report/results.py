"""What the workflow wrote, as tables the plots take: per-case values, per-label Dice, runtimes, benchmarks.

The input is the long metrics table of one task (``metrics.leaderboard.load_metrics``: method, pair, label,
metric, value). Failed cases are left out of every value here (``metrics.leaderboard.scored_rows``); the
leaderboards count them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from regbench.metrics.leaderboard import case_values, scored_rows
from regbench.pretrained import SHIPPED, TRAINED, VALIDATION_COLUMNS, read_provenance


@dataclass(frozen=True)
class Metric:
    """A per-case metric as the plots show it.

    Attributes:
        name: its name in ``metrics.csv``.
        short: what titles and captions call it.
        label: axis label, with the unit.
        higher_is_better: True for overlap, False for distances, SDlogJ and runtime.
    """

    name: str
    short: str
    label: str
    higher_is_better: bool


DICE = Metric("DSC", "Dice", "Dice (mean over labels)", True)
HD95_MM = Metric("HD95_mm", "HD95", "HD95 (mm)", False)
TRE_LANDMARKS = Metric("TRE_lm", "TRE", "TRE on landmarks (mm)", False)
TRE_KEYPOINTS = Metric("TRE_kp", "TRE", "TRE on keypoints (mm)", False)
SDLOGJ = Metric("LogJacDetStd", "SDlogJ", "SDlogJ (std of log det J)", False)
RUNTIME = Metric("Runtime_s", "runtime", "runtime per pair (s)", False)
CASE_METRICS = (DICE, HD95_MM, TRE_LANDMARKS, TRE_KEYPOINTS, SDLOGJ)


def case_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per scored case: columns method, pair, metric, value (the case's mean over labels or points)."""
    return case_values(table).reset_index()


def present(cases: pd.DataFrame, metrics: Sequence[Metric] = CASE_METRICS) -> list[Metric]:
    """Those of ``metrics`` that ``cases`` holds values of, in the given order."""
    names = set(cases["metric"])
    return [m for m in metrics if m.name in names]


def primary_metric(cases: pd.DataFrame) -> Metric | None:
    """The accuracy the figures judge a task by: TRE where the task has landmarks or keypoints (landmarks
    first), else Dice; None if the cases hold neither. TRE measures the error itself at many points inside
    the organ, where Dice of large structures (lungs) stays high even without any registration."""
    found = present(cases, (TRE_LANDMARKS, TRE_KEYPOINTS, DICE))
    return found[0] if found else None


def method_means(cases: pd.DataFrame, metric: Metric) -> pd.Series:
    """Mean over scored cases of ``metric`` per method."""
    return cases[cases["metric"] == metric.name].groupby("method")["value"].mean()


def representative_pair(cases: pd.DataFrame, metric: Metric) -> str | None:
    """A typical case, the same for every method: the pair whose value averaged over methods is nearest the
    median of those averages (the first in pair order on a tie); None if no case has the metric."""
    per_pair = cases[cases["metric"] == metric.name].groupby("pair")["value"].mean().sort_index()
    if per_pair.empty:
        return None
    return str((per_pair - per_pair.median()).abs().idxmin())


def label_means(table: pd.DataFrame, labels: Mapping[int, str], metric: str = DICE.name) -> pd.DataFrame:
    """Mean over scored cases of a per-label metric: methods x label names (columns in label order)."""
    rows = scored_rows(table)
    rows = rows[(rows["metric"] == metric) & rows["label"].notna()]
    means = rows.groupby(["method", "label"])["value"].mean().unstack("label")
    means = means.reindex(columns=[k for k in labels if k in means.columns])
    return means.rename(columns={k: labels[k] for k in labels})


def read_benchmark(path: str | Path) -> dict[str, float]:
    """Wall time (``s``) and peak memory (``max_rss``, MB) of a job from its Snakemake ``benchmark:`` file;
    empty if the file is absent (the job has not run under this workflow)."""
    path = Path(path)
    if not path.is_file():
        return {}
    row = pd.read_csv(path, sep="\t").iloc[0]
    return {key: float(row[key]) for key in ("s", "max_rss") if key in row and pd.notna(row[key])}


def model_sources(paths: Mapping[tuple[str, str], str | Path]) -> pd.DataFrame:
    """Where each (task, method)'s model came from (``regbench.pretrained`` provenance files): task, method,
    model (shipped or trained here) and why."""
    labels = {SHIPPED: "shipped", TRAINED: "trained here"}
    rows = []
    for (task, method), path in paths.items():
        account = read_provenance(path)
        rows.append({"task": task, "method": method, "model": labels[account["source"]], "why": account["reason"]})
    return pd.DataFrame(rows, columns=["task", "method", "model", "why"])


CURVE_COLUMNS = ["task", "method", *VALIDATION_COLUMNS]


def validation_curves(paths: Mapping[tuple[str, str], str | Path]) -> pd.DataFrame:
    """Every (task, method)'s validation curve (``regbench.training``) in one table: task, method, step, dice,
    tre_mm (NaN without keypoints, and in curves written before it was recorded), best; empty where no network
    was validated."""
    frames = [pd.read_csv(path).assign(task=task, method=method) for (task, method), path in paths.items()]
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(frames, ignore_index=True).reindex(columns=CURVE_COLUMNS)
