"""Leaderboards as styled HTML: the best value of each column marked, failed cases counted and flagged.

The Markdown and CSV leaderboards (``metrics.leaderboard``) are the data; this is how the page shows them.
Which way is better follows the metric: Dice, rank scores and the overall score up; distances, SDlogJ,
folding, runtime and calibration error down. Columns with no "better" (the place, the failure count,
coverage, which should match its nominal level rather than be large) are not marked.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

import numpy as np
import pandas as pd

HIGHER_IS_BETTER_PREFIXES = ("rank_", "DSC", "StdErrorSpearman")
UNMARKED_PREFIXES = ("place", "failed", "Coverage", "DSC_SampleStd")
FAILED_COLUMN = "failed"


def better(column: str, *, task_columns: frozenset[str] = frozenset()) -> str | None:
    """``"higher"``, ``"lower"`` or None (not marked) for a leaderboard column; ``task_columns`` are the
    per-task scores of the overall leaderboard (higher is better)."""
    if column.startswith(UNMARKED_PREFIXES):
        return None
    if column == "score" or column in task_columns or column.startswith(HIGHER_IS_BETTER_PREFIXES):
        return "higher"
    return "lower"


def best_mask(values: pd.Series, direction: str | None) -> pd.Series:
    """True where a value is the best of its column (ties all marked); all False if unmarked or empty."""
    numbers = pd.to_numeric(values, errors="coerce")
    if direction is None or numbers.isna().all():
        return pd.Series(False, index=values.index)
    target = numbers.max() if direction == "higher" else numbers.min()
    return pd.Series(np.isclose(numbers, target, rtol=1e-9, atol=0), index=values.index) & numbers.notna()


def format_value(value: object) -> str:
    """Four significant digits for floats, integers as they are, a dash for missing values."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, (int, np.integer)):
        return str(value)
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return html.escape(str(value))


def leaderboard_html(board: pd.DataFrame, *, caption: str, palette: Mapping[str, str] | None = None,
                     task_columns: frozenset[str] = frozenset()) -> str:
    """An HTML ``<table class="leaderboard">`` of a leaderboard indexed by method.

    Best cells carry ``class="best"`` (and a title saying so), a nonzero failure count ``class="failed"``;
    a method's name starts with a swatch of its colour. The page's stylesheet gives the classes their look.
    """
    marks = {column: best_mask(board[column], better(str(column), task_columns=task_columns))
             for column in board.columns}
    header = "".join(f"<th>{html.escape(str(c))}</th>" for c in [board.index.name or "method", *board.columns])
    rows = []
    for method, row in board.iterrows():
        swatch = (f'<span class="swatch" style="background:{palette[method]}"></span>'
                  if palette and method in palette else "")
        cells = [f'<th scope="row">{swatch}{html.escape(str(method))}</th>']
        for column in board.columns:
            value = row[column]
            classes = []
            if marks[column][method]:
                classes.append("best")
            if column == FAILED_COLUMN and pd.notna(value) and value > 0:
                classes.append("failed")
            attributes = f' class="{" ".join(classes)}"' if classes else ""
            if "best" in classes:
                attributes += f' title="best {html.escape(str(column))}"'
            cells.append(f"<td{attributes}>{format_value(value)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table class="leaderboard"><caption>{html.escape(caption)}</caption>'
            f"<thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
