"""Leaderboard tables: one per task (Learn2Reg ranking plus regbench's extra metrics) and one overall.

Reads the ``metrics.csv`` that ``metrics.evaluate.write_evaluation`` writes for each method, ranks them with
``metrics.ranking`` and writes each leaderboard as CSV and Markdown (atomically). Extra metrics that are not
ranked (``HD95_mm``, ``FoldingFraction``, ``DispError_mm``...) are means over the scored cases.

The CSV keeps every column, for programs. People read ``BoardTable``s (``task_tables``, ``overall_tables``),
the same in the Markdown here and the report's HTML: the ranking first (place, score, each ranked metric's
mean with its rank score), then the unranked metrics in tables of their own, each shown only for the
methods that have them, with notes under each table that say what its columns mean and what the ranking
could not tell apart.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from regbench import io
from regbench.metrics.evaluate import (
    CALIBRATION_ERROR, DISP_ERROR, DISP_ERROR_95, FAILED, FOLDING, NDV, SAMPLE_STD_SUFFIX, STD_ERROR_SPEARMAN,
)
from regbench.metrics.ranking import P_THRESHOLD, rank_task, separating_samples, smallest_p_value
from regbench.metrics.substitutes import KIND_OF_NAME, RUNTIME

INITIAL_METHOD = "identity"
NOT_APPLICABLE = "n/a"  # a method without a value in a column (uncertainty of a deterministic method...)
SUBSTITUTE_MARK = "†"  # a missing-value substitute, not a measurement
PLACE, SCORE, FAILED_COLUMN = "place", "score", "failed"
DISPLAY_NAMES = {"LogJacDetStd": "SDlogJ", RUNTIME: "runtime (s)"}


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
    board[FAILED_COLUMN] = table[table["metric"] == FAILED].groupby("method")["value"].sum().astype(int)
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


def format_number(value: object) -> str:
    """Four significant digits for floats, integers as they are, ``NOT_APPLICABLE`` for missing values."""
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return NOT_APPLICABLE
    if isinstance(value, (int, np.integer)):
        return str(value)
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


@dataclass(frozen=True)
class BoardTable:
    """One table of a leaderboard as people read it; numbers, so each view (Markdown, HTML) can mark them.

    Attributes:
        title: what the table holds.
        values: methods (rows, best first) x columns as shown (display names); NaN where a method has none.
        ranks: the Learn2Reg rank score of each ranked column of ``values`` (its columns are those).
        substitutes: the (method, column) cells that hold a missing-value substitute, not a measurement.
        notes: what the columns mean and what to beware of, one sentence each, printed under the table.
    """

    title: str
    values: pd.DataFrame
    ranks: pd.DataFrame
    substitutes: frozenset[tuple[str, str]] = frozenset()
    notes: tuple[str, ...] = ()

    def cell(self, method: str, column: str) -> str:
        """A cell's text: the value (``SUBSTITUTE_MARK`` after a substitute) and, for a ranked column, its rank
        score in brackets; ``NOT_APPLICABLE`` where the method has no value."""
        value = self.values.at[method, column]
        if pd.isna(value):
            return NOT_APPLICABLE
        text = format_number(value) + (SUBSTITUTE_MARK if (method, column) in self.substitutes else "")
        if column in self.ranks.columns:
            text += f" ({self.ranks.at[method, column]:.3g})"
        return text

    def markdown(self) -> str:
        """The table as a titled Markdown section with its notes as a list."""
        cells = pd.DataFrame([[self.cell(m, c) for c in self.values.columns] for m in self.values.index],
                             index=self.values.index, columns=self.values.columns)
        table = cells.to_markdown(disable_numparse=True, colalign=("left", *["right"] * cells.shape[1]))
        notes = "".join(f"- {note}\n" for note in self.notes)
        return f"## {self.title}\n\n{table}\n" + (f"\n{notes}" if notes else "")


@dataclass(frozen=True)
class _Extra:
    """Unranked columns shown in a table of their own: ``explained`` maps column patterns (``fnmatch``) to
    what they mean, in the order the columns are shown."""

    title: str
    explained: Mapping[str, str]

    def key(self, column: str) -> str | None:
        """The pattern of ``explained`` that ``column`` matches, if any."""
        return next((k for k in self.explained if fnmatch.fnmatchcase(column, k)), None)

    def order(self, column: str) -> tuple[int, str]:
        """Where ``column`` goes: by its pattern's place in ``explained``, unexplained ones last, then by name."""
        key = self.key(column)
        return (list(self.explained).index(key) if key else len(self.explained), column)


ACCURACY = _Extra("Accuracy and plausibility (not ranked)", {
    "HD95_mm": "HD95_mm: HD95 in mm (the ranked HD95 is in voxels, as the official evaluation reports it).",
    FOLDING: f"{FOLDING}: share of voxels whose Jacobian determinant is <= 0 (folding).",
    NDV: f"{NDV}: non-diffeomorphic volume as LUMIR 2025 computes it, % of voxels.",
})
GROUND_TRUTH = _Extra("Error against the true displacement (synthetic tasks only; not ranked)", {
    DISP_ERROR: f"{DISP_ERROR}: mean distance between the method's and the true displacement (mm).",
    DISP_ERROR_95: f"{DISP_ERROR_95}: its 95th percentile (mm).",
})
UNCERTAINTY = _Extra("Uncertainty (only methods that report one; not ranked)", {
    "Coverage*sd": "Coverage<k>sd: share of errors within k predicted standard deviations (a calibrated "
                   "Gaussian gives 0.683, 0.954, 0.997; below: over-confident).",
    CALIBRATION_ERROR: f"{CALIBRATION_ERROR}: mean gap between observed and nominal coverage (0 is best).",
    STD_ERROR_SPEARMAN: f"{STD_ERROR_SPEARMAN}: rank correlation of the predicted std with the actual error "
                        "(1: the method knows where it is wrong).",
    f"*{SAMPLE_STD_SUFFIX}": f"<metric>{SAMPLE_STD_SUFFIX}: std of that metric over the posterior samples.",
})
EXTRAS = (ACCURACY, GROUND_TRUTH, UNCERTAINTY)


def _extra_of(column: str) -> _Extra:
    """The group an unranked column is shown in; an unknown metric goes with ``ACCURACY``."""
    return next((extra for extra in EXTRAS if extra.key(column)), ACCURACY)


def display_name(column: str) -> str:
    """A column's name in the tables people read (``SDlogJ`` for ``LogJacDetStd``)."""
    return DISPLAY_NAMES.get(column, column)


def ranked_metrics(board: pd.DataFrame) -> list[str]:
    """The ranked metrics of a task leaderboard, in ranking order: those with a ``rank_`` column."""
    return [str(c)[len("rank_"):] for c in board.columns if str(c).startswith("rank_")]


def _robustness_note(name: str) -> str:
    """What a robustness column (``DSC30``, ``TRE_kp30``) averages."""
    if name.startswith("DSC"):
        return (f"{name}: mean Dice over the 30 % of (case, label) samples where {INITIAL_METHOD} (the initial "
                "alignment) scores lowest, i.e. robustness on the hardest structures.")
    return (f"{name}: mean {name[:-2]} over the 30 % of points where {INITIAL_METHOD} (the initial alignment) "
            "has the largest error, i.e. robustness on the largest motions.")


def _separation_notes(board: pd.DataFrame, ranked: Sequence[str]) -> list[str]:
    """Which ranked metrics could not order any two methods: too few samples for the rank-sum test ever to
    reach p < 0.05, or no difference that reached it; and a first place that the methods share."""
    notes = []
    needed = separating_samples()
    counts = {name: int(board[f"n_{name}"].iloc[0]) for name in ranked}
    few = {name: n for name, n in counts.items() if n < needed}
    if few:
        listed = ", ".join(f"{display_name(name)} (n = {n})" for name, n in few.items())
        lowest = min(few.values())
        notes.append(f"Too few samples per method to separate any methods on {listed}: the rank-sum test "
                     f"needs n >= {needed} to reach p < {P_THRESHOLD} (with n = {lowest} the smallest possible p is "
                     f"{smallest_p_value(lowest):.2g}), so every method gets the same rank score there.")
    tied = [display_name(n) for n in ranked if n not in few and board[f"rank_{n}"].nunique() == 1]
    if tied:
        notes.append(f"No two methods differ significantly (p < {P_THRESHOLD}) on {', '.join(tied)}.")
    first = [str(m) for m in board.index[board[PLACE] == board[PLACE].min()]]
    if len(first) > 1:
        notes.append(f"{len(first)} methods share place 1 ({', '.join(first)})" + (
            f", {INITIAL_METHOD} (no registration) among them: this ranking cannot tell them from not registering."
            if INITIAL_METHOD in first else "."))
    return notes


def _ranking_table(board: pd.DataFrame) -> BoardTable:
    """Place, score, each ranked metric's mean with its rank score, and failed cases."""
    ranked = ranked_metrics(board)
    columns = [c for c in (PLACE, SCORE, *ranked, FAILED_COLUMN) if c in board.columns]
    values = board[columns].rename(columns=display_name)
    ranks = board[[f"rank_{n}" for n in ranked]].set_axis([display_name(n) for n in ranked], axis=1)
    substituted = [display_name(n) for n in ranked if KIND_OF_NAME.get(n) in ("sdlogj", "runtime")]
    substitutes = frozenset((INITIAL_METHOD, c) for c in substituted if INITIAL_METHOD in board.index)
    notes = ["Ranked cells: the mean over the samples the ranking compares and, in brackets, its Learn2Reg rank "
             "score (0.1 worst, 1 best); score: the geometric mean of the rank scores; place 1 is best."]
    notes += [_robustness_note(n) for n in ranked if n.endswith("30")]
    if substitutes:
        notes.append(f"{SUBSTITUTE_MARK} a substitute, not a measurement: {INITIAL_METHOD} (no registration) is "
                     f"ranked with its {' and '.join(substituted)} counted as missing, as in the Learn2Reg "
                     "notebooks.")
    if FAILED_COLUMN in board.columns:
        notes.append("failed: cases whose field was missing or invalid, scored as Learn2Reg scores a missing case.")
    return BoardTable("Ranking", values, ranks, substitutes, tuple(notes + _separation_notes(board, ranked)))


def _extra_table(board: pd.DataFrame, extra: _Extra, columns: Sequence[str]) -> BoardTable | None:
    """``columns`` of ``board`` for the methods that have any of them, in ``extra``'s order; None if none."""
    values = board[list(columns)].dropna(axis=0, how="all").dropna(axis=1, how="all")
    if values.empty:
        return None
    values = values[sorted(values.columns, key=extra.order)]
    notes = dict.fromkeys(extra.explained[key] for key in map(extra.key, values.columns) if key)
    return BoardTable(extra.title, values, pd.DataFrame(index=values.index), notes=tuple(notes))


def task_tables(board: pd.DataFrame) -> list[BoardTable]:
    """A task leaderboard (``task_leaderboard``, or its CSV read back) as people read it: the ranking, then
    each group of unranked metrics (``EXTRAS``) that some method has."""
    ranked = ranked_metrics(board)
    shown = {PLACE, SCORE, FAILED_COLUMN, *ranked, *(f"{p}_{n}" for p in ("rank", "n") for n in ranked)}
    extras = [str(c) for c in board.columns if c not in shown]
    tables = [_ranking_table(board)]
    for extra in EXTRAS:
        table = _extra_table(board, extra, [c for c in extras if _extra_of(c) is extra])
        if table is not None:
            tables.append(table)
    return tables


def overall_tables(board: pd.DataFrame) -> list[BoardTable]:
    """The overall leaderboard (``ranking.overall_leaderboard``) as people read it: place, the mean score, then
    each task's score; tasks on which every method scores the same are named."""
    tasks = [str(c) for c in board.columns if c not in (PLACE, SCORE)]
    values = board[[PLACE, SCORE, *tasks]]
    notes = ["score: the mean over tasks of each task's Learn2Reg score (the task columns; a task a method did not "
             "run counts 0.1); place 1 is best."]
    tied = [t for t in tasks if board[t].nunique() == 1]
    if tied and len(board) > 1:
        notes.append(f"Every method scores the same on {', '.join(tied)}: "
                     f"{'that task does' if len(tied) == 1 else 'those tasks do'} not order the methods "
                     "(see the task's leaderboard).")
    return [BoardTable("Mean Learn2Reg score over tasks", values, pd.DataFrame(index=values.index),
                       notes=tuple(notes))]


def write_table(frame: pd.DataFrame, stem: Path, *, title: str, tables: Sequence[BoardTable],
                notes: Mapping[str, str] | None = None) -> None:
    """``stem.csv`` (``frame``, every column) and ``stem.md``: the title, ``tables`` and below them the metrics
    that could not be scored, ``notes`` (metric -> reason)."""
    with io.atomic_path(stem.with_suffix(".csv")) as tmp:
        frame.to_csv(tmp)
    markdown = f"# {title}\n\n" + "\n".join(table.markdown() for table in tables)
    if notes:
        markdown += "\nNot scored (the data to compute them is absent):\n\n" + \
            "".join(f"- {metric}: {reason}\n" for metric, reason in notes.items())
    with io.atomic_path(stem.with_suffix(".md")) as tmp:
        tmp.write_text(markdown)
