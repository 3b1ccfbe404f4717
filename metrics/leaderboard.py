"""Leaderboard tables: one per task (Learn2Reg ranking plus regbench's extra metrics) and one overall.

Reads the ``metrics.csv`` that ``metrics.evaluate.write_evaluation`` writes for each method, ranks them with
``metrics.ranking`` and writes each table as CSV and Markdown (atomically). Extra metrics that are not ranked
(``HD95_mm``, ``FoldingFraction``, ``DispError_mm``...) are shown as means over the scored cases.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from regbench import io
from regbench.metrics.evaluate import FAILED
from regbench.metrics.ranking import rank_task

INITIAL_METHOD = "identity"


def load_metrics(paths: Mapping[str, str | Path]) -> pd.DataFrame:
    """The long metrics table of several methods: ``metrics.csv`` of each with a ``method`` column."""
    frames = [pd.read_csv(path, na_values=["NaN"], keep_default_na=False, dtype={"label": "string"})
              .assign(method=method) for method, path in paths.items()]
    table = pd.concat(frames, ignore_index=True)
    table["label"] = pd.to_numeric(table["label"].replace("", pd.NA)).astype("Int64")
    return table


def scored_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the long metrics table that describe what a method achieved: those of failed cases (the
    leaderboard counts them apart), the ``Failed`` rows themselves and non-finite values left out."""
    failed = table[table["metric"] == FAILED].set_index(["method", "pair"])["value"]
    rows = table[table["metric"] != FAILED]
    ok = ~failed.reindex(pd.MultiIndex.from_frame(rows[["method", "pair"]])).to_numpy(dtype=bool)
    return rows[ok & np.isfinite(rows["value"].to_numpy(dtype=float))]


def case_values(table: pd.DataFrame) -> pd.Series:
    """Each scored case's value of each metric and method (the mean over its labels or points), indexed by
    (method, metric, pair)."""
    return scored_rows(table).groupby(["method", "metric", "pair"])["value"].mean()


def _case_means(table: pd.DataFrame) -> pd.DataFrame:
    """Per method and metric, the mean over cases of each case's (label or point) mean, failures excluded."""
    return case_values(table).groupby(["method", "metric"]).mean().unstack("metric")


def task_leaderboard(table: pd.DataFrame) -> pd.DataFrame:
    """Ranked methods of one task, best first: ranked metrics, rank scores, the score and the place, then the
    extra metrics and the number of failed cases."""
    ranked = rank_task(table, initial=INITIAL_METHOD if INITIAL_METHOD in set(table["method"]) else "")
    means = _case_means(table)
    extra = [m for m in means.columns if m not in ranked.columns]
    board = ranked.join(means[extra])
    board["failed"] = table[table["metric"] == FAILED].groupby("method")["value"].sum().astype(int)
    return board


def evaluation_path(metrics_path: str | Path) -> Path:
    """The ``evaluation.json`` that ``write_evaluation`` writes beside a ``metrics.csv``."""
    return Path(metrics_path).with_name("evaluation.json")


def not_scored(metrics_paths: Mapping[str, str | Path]) -> dict[str, str]:
    """Every metric some method's evaluation could not compute on some pair, with the reason: for the whole
    split (``not_scored`` of evaluation.json: hidden test labels, unpublished keypoints) or for some pairs
    (``not_scored_cases``). The files a metric needs are the task's, so the reasons agree across methods; the
    first method's is kept."""
    found: dict[str, str] = {}
    for path in metrics_paths.values():
        evaluation = json.loads(evaluation_path(path).read_text())
        for metric, reason in (evaluation.get("not_scored") or {}).items():
            found.setdefault(metric, reason)
        missing: dict[str, list[str]] = {}
        for case, reasons in (evaluation.get("not_scored_cases") or {}).items():
            for metric, reason in reasons.items():
                missing.setdefault(metric, []).append(f"{case}: {reason}")
        for metric, reasons in missing.items():
            found.setdefault(metric, f"not on {len(reasons)} pair(s), e.g. {reasons[0]}")
    return found


def write_table(frame: pd.DataFrame, stem: Path, *, title: str, notes: Mapping[str, str] | None = None) -> None:
    """``stem.csv`` and ``stem.md`` (a titled Markdown table, numbers to 4 significant digits, "n/a" where a
    method has no value, e.g. uncertainty metrics of a method that gives no uncertainty), and below it the
    metrics that could not be scored, ``notes`` (metric -> reason)."""
    with io.atomic_path(stem.with_suffix(".csv")) as tmp:
        frame.to_csv(tmp)
    markdown = f"# {title}\n\n{frame.to_markdown(floatfmt='.4g', missingval='n/a')}\n"
    if notes:
        markdown += "\nNot scored (the data to compute them is absent):\n\n" + \
            "".join(f"- {metric}: {reason}\n" for metric, reason in notes.items())
    with io.atomic_path(stem.with_suffix(".md")) as tmp:
        tmp.write_text(markdown)
