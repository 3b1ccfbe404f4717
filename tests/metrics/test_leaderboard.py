"""Leaderboard files: the metrics a task's data could not give are listed with their reasons, never dropped;
the tables people read are narrow, split by kind, and say what the ranking could not tell apart."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from regbench.metrics.leaderboard import (
    NOT_APPLICABLE, SUBSTITUTE_MARK, not_scored, overall_tables, task_leaderboard, task_tables, write_table,
)
from regbench.metrics.ranking import overall_leaderboard


def _evaluation(folder: Path, not_scored_split: dict, not_scored_cases: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "evaluation.json").write_text(json.dumps({"not_scored": not_scored_split,
                                                        "not_scored_cases": not_scored_cases}))
    return folder / "metrics.csv"


def test_not_scored_joins_the_split_and_the_per_pair_reasons_of_every_method(tmp_path):
    hidden = "labelsTs/OASIS_0415_0000.nii.gz: file not found (and for all 2 pairs)"
    paths = {
        "identity": _evaluation(tmp_path / "identity", {"DSC": hidden}, {}),
        "affine": _evaluation(tmp_path / "affine", {"DSC": hidden},
                              {"0002_0001<--0002_0000": {"TRE_kp": "keypoints01Tr/x.csv: file not found"},
                               "0003_0001<--0003_0000": {"TRE_kp": "keypoints01Tr/y.csv: file not found"}}),
    }
    assert not_scored(paths) == {
        "DSC": hidden,
        "TRE_kp": "not on 2 pair(s), e.g. 0002_0001<--0002_0000: keypoints01Tr/x.csv: file not found"}


def test_the_markdown_leaderboard_lists_what_was_not_scored(tmp_path):
    frame = task_leaderboard(_long_table(cases=3))
    tables = task_tables(frame)
    write_table(frame, tmp_path / "OASIS", title="Leaderboard: OASIS", tables=tables,
                notes={"DSC": "labelsTs/...: file not found"})
    text = (tmp_path / "OASIS.md").read_text()
    assert text.endswith("Not scored (the data to compute them is absent):\n\n- DSC: labelsTs/...: file not found\n")
    write_table(frame, tmp_path / "brain", title="Leaderboard: brain", tables=tables)
    assert "Not scored" not in (tmp_path / "brain.md").read_text()


DICE_LEVEL = {"identity": 0.5, "affine": 0.6, "bayesian": 0.8, "ensemble": 0.85}


def _long_table(cases: int) -> pd.DataFrame:
    """A label task's metrics of four methods as ``load_metrics`` gives them: per case two labels of Dice and
    HD95 (and HD95_mm), SDlogJ, runtime and DispError_mm; coverage and calibration for bayesian and ensemble
    only, and DSC_SampleStd (from posterior samples) for bayesian only."""
    rows = []
    for method, level in DICE_LEVEL.items():
        for case in range(cases):
            pair = f"{case:04d}_0000<--{case:04d}_0001"
            for label in (1, 2):
                dice = level + 0.01 * case + 0.001 * label
                rows += [(method, pair, label, "DSC", dice), (method, pair, label, "HD95", 10 * (1 - dice)),
                         (method, pair, label, "HD95_mm", 20 * (1 - dice))]
                if method == "bayesian":
                    rows.append((method, pair, label, "DSC_SampleStd", 0.02))
            rows += [(method, pair, None, "LogJacDetStd", 0.0 if method == "identity" else level / 10 + case / 1e3),
                     (method, pair, None, "Runtime_s", level + case / 1e3),
                     (method, pair, None, "DispError_mm", 1 - level), (method, pair, None, "Failed", 0.0)]
            if method in ("bayesian", "ensemble"):
                rows += [(method, pair, None, "Coverage1sd", 0.6), (method, pair, None, "CalibrationError", 0.1)]
    table = pd.DataFrame(rows, columns=["method", "pair", "label", "metric", "value"])
    table["label"] = table["label"].astype("Int64")
    return table


@pytest.fixture(scope="module")
def board() -> pd.DataFrame:
    return task_leaderboard(_long_table(cases=10))


def test_the_csv_keeps_every_column_and_the_tables_split_them_by_kind(board, tmp_path):
    tables = task_tables(board)
    write_table(board, tmp_path / "brain", title="Leaderboard: brain", tables=tables)
    assert set(pd.read_csv(tmp_path / "brain.csv", index_col="method").columns) == set(board.columns)
    assert [t.title.split(" (")[0] for t in tables] == ["Ranking", "Accuracy and plausibility",
                                                         "Error against the true displacement", "Uncertainty"]
    ranking, accuracy, truth, uncertainty = tables
    assert list(ranking.values.columns) == ["place", "score", "DSC", "DSC30", "HD95", "SDlogJ", "runtime (s)",
                                            "failed"]
    assert ranking.values["score"].is_monotonic_decreasing and ranking.values.index[-1] == "identity"
    assert list(accuracy.values.columns) == ["HD95_mm"] and list(truth.values.columns) == ["DispError_mm"]
    # uncertainty only for the methods that report one, explained under the table
    assert list(uncertainty.values.index) == ["bayesian", "ensemble"]  # in leaderboard order
    assert list(uncertainty.values.columns) == ["Coverage1sd", "CalibrationError", "DSC_SampleStd"]
    assert any(note.startswith("Coverage<k>sd:") for note in uncertainty.notes)


def test_tables_without_their_metrics_are_left_out(board):
    plain = board.drop(columns=["Coverage1sd", "CalibrationError", "DSC_SampleStd", "DispError_mm"])
    assert [t.title for t in task_tables(plain)] == ["Ranking", "Accuracy and plausibility (not ranked)"]


def test_markdown_is_narrow_and_marks_what_is_not_measured(board, tmp_path):
    write_table(board, tmp_path / "brain", title="Leaderboard: brain", tables=task_tables(board))
    text = (tmp_path / "brain.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert max(len(row) for row in rows) <= 120, max(rows, key=len)
    # ensemble has no samples: one notation for "no value", never pandas' nan
    assert "nan" not in text.lower().replace("mean", "")
    uncertainty = text.split("## Uncertainty", 1)[1]
    ensemble = next(row for row in uncertainty.splitlines() if row.startswith("| ensemble"))
    assert ensemble.rstrip(" |").endswith(NOT_APPLICABLE)
    # identity's SDlogJ and runtime are the missing-value substitutes, marked, with their rank score beside
    identity = next(row for row in rows if row.startswith("| identity") and SUBSTITUTE_MARK in row)
    assert f"1.5{SUBSTITUTE_MARK} (0.1)" in identity and f"5000{SUBSTITUTE_MARK} (0.1)" in identity
    assert text.count(SUBSTITUTE_MARK) == 3  # the two cells and the note that explains them
    assert "DSC30: mean Dice over the 30 % of (case, label) samples where identity" in text


def test_a_ranking_that_cannot_separate_methods_says_so():
    # one case: two Dice/HD95 samples per method, one SDlogJ and one runtime: the rank-sum test cannot reach
    # p < 0.05 on any of them, so all four methods share place 1, identity (no registration) among them
    ranking = task_tables(task_leaderboard(_long_table(cases=1)))[0]
    assert ranking.values["place"].tolist() == [1, 1, 1, 1]
    notes = " ".join(ranking.notes)
    assert "Too few samples per method to separate any methods on DSC (n = 2), DSC30 (n = 1), HD95 (n = 2), " \
           "SDlogJ (n = 1), runtime (s) (n = 1): the rank-sum test needs n >= 3" in notes
    assert "4 methods share place 1 (affine, bayesian, ensemble, identity), identity (no registration)" in notes


def test_a_ranking_that_separates_methods_has_no_warning(board):
    notes = " ".join(task_tables(board)[0].notes)
    assert "Too few samples" not in notes and "share place 1" not in notes
    assert "No two methods differ significantly" not in notes


def test_overall_table_puts_the_place_first_and_names_tasks_that_order_nothing():
    tied = pd.DataFrame({"score": [0.55, 0.55]}, index=pd.Index(["a", "b"], name="method"))
    ordered = pd.DataFrame({"score": [1.0, 0.1]}, index=pd.Index(["a", "b"], name="method"))
    [table] = overall_tables(overall_leaderboard({"brain": ordered, "lung": tied}))
    assert list(table.values.columns) == ["place", "score", "brain", "lung"]
    assert any(note.startswith("Every method scores the same on lung") for note in table.notes)
