"""Styled leaderboards: which cell is best depends on the column's direction; failures are flagged."""

import re

import numpy as np
import pandas as pd

from regbench.report.tables import better, best_mask, format_value, leaderboard_html


def _board() -> pd.DataFrame:
    return pd.DataFrame({"DSC": [0.8, 0.6, 0.8], "HD95": [3.0, 2.0, 5.0], "rank_DSC": [1.0, 0.1, 1.0],
                         "score": [0.9, 0.4, 0.3], "place": [1, 2, 3], "Coverage1sd": [0.6, 0.7, np.nan],
                         "failed": [0, 2, 0]},
                        index=pd.Index(["affine", "identity", "iterative"], name="method"))


def test_direction_of_each_column():
    assert better("DSC") == better("DSC30") == better("rank_HD95") == better("score") == "higher"
    assert better("HD95") == better("TRE_kp") == better("LogJacDetStd") == better("Runtime_s") == "lower"
    assert better("place") is better("failed") is better("Coverage2sd") is None
    assert better("brain_mr", task_columns=frozenset({"brain_mr"})) == "higher"


def test_best_mask_marks_ties_and_ignores_missing_values():
    assert best_mask(pd.Series([0.8, 0.6, 0.8]), "higher").tolist() == [True, False, True]
    assert best_mask(pd.Series([3.0, np.nan, 2.0]), "lower").tolist() == [False, False, True]
    assert not best_mask(pd.Series([1.0, 2.0]), None).any()


def _cells(table: str, method: str) -> list[str]:
    row = re.search(rf"<tr><th scope=\"row\">(?:<span[^>]*></span>)?{method}</th>(.*?)</tr>", table).group(1)
    return re.findall(r"<td([^>]*)>", row)


def test_html_marks_the_best_cells_and_flags_failures():
    table = leaderboard_html(_board(), caption="Leaderboard: brain_mr", palette={"affine": "#1f77b4"})
    assert "<caption>Leaderboard: brain_mr</caption>" in table
    affine, identity = _cells(table, "affine"), _cells(table, "identity")
    # columns: DSC, HD95, rank_DSC, score, place, Coverage1sd, failed
    assert ['best' in c for c in affine] == [True, False, True, True, False, False, False]
    assert ['best' in c for c in identity] == [False, True, False, False, False, False, False]
    assert 'class="failed"' in identity[-1] and "failed" not in affine[-1]
    assert 'style="background:#1f77b4"' in table  # the method's colour swatch


def test_format_value():
    assert [format_value(v) for v in (0.123456, 3, np.nan, "a<b")] == ["0.1235", "3", "–", "a&lt;b"]
