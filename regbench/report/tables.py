"""Leaderboards as styled HTML: the best value of each column marked, failed cases counted and flagged.

The tables and their cells are the Markdown leaderboards' (``metrics.leaderboard.BoardTable``); this is how
the page shows them. Which way is better follows the column: Dice, the score and the overall per-task
scores up; distances, SDlogJ, folding, runtime and calibration error down. Columns with no "better" (the
place, the failure count, coverage, which should match its nominal level rather than be large) are not
marked, and neither are substitutes, which were never measured.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from regbench.metrics.leaderboard import FAILED_COLUMN, PLACE, SCORE, BoardTable, format_number

HIGHER_IS_BETTER_PREFIXES = ("DSC", "StdErrorSpearman")
UNMARKED_PREFIXES = (PLACE, FAILED_COLUMN, "Coverage", "DSC_SampleStd")


def better(column: str, *, task_columns: frozenset[str] = frozenset()) -> str | None:
    """``"higher"``, ``"lower"`` or None (not marked) for a leaderboard column; ``task_columns`` are the
    per-task scores of the overall leaderboard (higher is better)."""
    if column.startswith(UNMARKED_PREFIXES):
        return None
    if column == SCORE or column in task_columns or column.startswith(HIGHER_IS_BETTER_PREFIXES):
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
    """A value as the leaderboards write it (``metrics.leaderboard.format_number``), escaped for HTML."""
    return html.escape(format_number(value))


def _measured(table: BoardTable) -> pd.DataFrame:
    """The table's values with its substitutes left out, so a substitute is never marked best."""
    substituted = pd.DataFrame(False, index=table.values.index, columns=table.values.columns)
    for method, column in table.substitutes:
        substituted.at[method, column] = True
    return table.values.mask(substituted)


def _table_html(table: BoardTable, *, caption: str, palette: Mapping[str, str] | None = None,
               task_columns: frozenset[str] = frozenset()) -> str:
    """An HTML ``<table class="leaderboard">`` of one table, its notes in a list below it.

    Best cells carry ``class="best"`` (and a title saying so), a nonzero failure count ``class="failed"``;
    a method's name starts with a swatch of its colour. The page's stylesheet gives the classes their look.
    """
    measured = _measured(table)
    marks = {column: best_mask(measured[column], better(str(column), task_columns=task_columns))
             for column in table.values.columns}
    header = "".join(f"<th>{html.escape(str(c))}</th>"
                     for c in [table.values.index.name or "method", *table.values.columns])
    rows = []
    for method, row in table.values.iterrows():
        swatch = (f'<span class="swatch" style="background:{palette[method]}"></span>'
                  if palette and method in palette else "")
        cells = [f'<th scope="row">{swatch}{html.escape(str(method))}</th>']
        for column in table.values.columns:
            classes = ["best"] if marks[column][method] else []
            if column == FAILED_COLUMN and pd.notna(row[column]) and row[column] > 0:
                classes.append("failed")
            attributes = f' class="{" ".join(classes)}"' if classes else ""
            if "best" in classes:
                attributes += f' title="best {html.escape(str(column))}"'
            cells.append(f"<td{attributes}>{html.escape(table.cell(method, column))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in table.notes)
    return (f'<table class="leaderboard"><caption>{html.escape(caption)}</caption>'
            f"<thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            + (f'<ul class="note">{notes}</ul>' if notes else ""))


def leaderboard_html(tables: Sequence[BoardTable], *, caption: str, palette: Mapping[str, str] | None = None,
                     task_columns: frozenset[str] = frozenset()) -> str:
    """A leaderboard's tables (``task_tables`` or ``overall_tables``), each captioned ``caption – its title``."""
    return "".join(_table_html(t, caption=f"{caption} – {t.title}", palette=palette, task_columns=task_columns)
                   for t in tables)
