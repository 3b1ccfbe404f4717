"""Styled leaderboards: which cell is best depends on the column's direction and never falls on a
substitute; failures are flagged; the cells and notes are those of the Markdown tables."""

import re

import numpy as np
import pandas as pd

from regbench.metrics.leaderboard import NOT_APPLICABLE, SUBSTITUTE_MARK, BoardTable
from regbench.report.tables import better, best_mask, format_value, leaderboard_html

METHODS = pd.Index(["affine", "identity", "iterative"], name="method")


def _tables() -> list[BoardTable]:
    values = pd.DataFrame({"place": [1, 3, 2], "score": [0.9, 0.3, 0.4], "DSC": [0.8, 0.6, 0.8],
                           "SDlogJ": [0.05, 0.01, 0.1], "failed": [0, 2, 0]}, index=METHODS)
    ranks = pd.DataFrame({"DSC": [1.0, 0.1, 1.0], "SDlogJ": [1.0, 0.1, 0.55]}, index=METHODS)
    ranking = BoardTable("Ranking", values, ranks, frozenset({("identity", "SDlogJ")}), ("place 1 is best.",))
    uncertainty = BoardTable("Uncertainty", pd.DataFrame({"Coverage1sd": [0.6, np.nan],
                                                          "CalibrationError": [0.1, 0.2]}, index=METHODS[[0, 2]]),
                             pd.DataFrame(index=METHODS[[0, 2]]))
    return [ranking, uncertainty]


def test_direction_of_each_column():
    assert better("DSC") == better("DSC30") == better("score") == "higher"
    assert better("HD95") == better("TRE_kp") == better("SDlogJ") == better("runtime (s)") == "lower"
    assert better("place") is better("failed") is better("Coverage2sd") is None
    assert better("brain_mr", task_columns=frozenset({"brain_mr"})) == "higher"


def test_best_mask_marks_ties_and_ignores_missing_values():
    assert best_mask(pd.Series([0.8, 0.6, 0.8]), "higher").tolist() == [True, False, True]
    assert best_mask(pd.Series([3.0, np.nan, 2.0]), "lower").tolist() == [False, False, True]
    assert not best_mask(pd.Series([1.0, 2.0]), None).any()


def _cells(table: str, method: str) -> list[tuple[str, str]]:
    """(attributes, text) of every cell of ``method``'s first row."""
    row = re.search(rf"<tr><th scope=\"row\">(?:<span[^>]*></span>)?{method}</th>(.*?)</tr>", table).group(1)
    return re.findall(r"<td([^>]*)>(.*?)</td>", row)


def test_html_marks_the_best_cells_and_flags_failures():
    table = leaderboard_html(_tables(), caption="Leaderboard: brain_mr", palette={"affine": "#1f77b4"})
    assert "<caption>Leaderboard: brain_mr – Ranking</caption>" in table
    assert "<caption>Leaderboard: brain_mr – Uncertainty</caption>" in table
    affine, identity = _cells(table, "affine"), _cells(table, "identity")
    # columns: place, score, DSC, SDlogJ, failed
    assert ["best" in attributes for attributes, _ in affine] == [False, True, True, True, False]
    assert ["best" in attributes for attributes, _ in identity] == [False, False, False, False, False]
    assert 'class="failed"' in identity[-1][0] and "failed" not in affine[-1][0]
    assert 'style="background:#1f77b4"' in table  # the method's colour swatch


def test_html_cells_are_the_markdown_cells_and_notes_follow_the_table():
    table = leaderboard_html(_tables(), caption="Leaderboard: brain_mr")
    # a ranked value with its rank score; identity's substitute is marked and, though the lowest, not best
    assert [text for _, text in _cells(table, "affine")][2:4] == ["0.8 (1)", "0.05 (1)"]
    assert _cells(table, "identity")[3] == ("", f"0.01{SUBSTITUTE_MARK} (0.1)")
    assert '<ul class="note"><li>place 1 is best.</li></ul>' in table
    uncertainty = table.split("Uncertainty</caption>", 1)[1]
    assert _cells(uncertainty, "iterative")[0] == ("", NOT_APPLICABLE)


def test_format_value():
    assert [format_value(v) for v in (0.123456, 3, np.nan, "a<b")] == ["0.1235", "3", NOT_APPLICABLE, "a&lt;b"]
