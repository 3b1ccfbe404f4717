"""metrics/ranking.py: significance ranks, tie sharing, robustness subsets, task and overall scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regbench.metrics.ranking import (
    RankedMetric, beaten_counts, overall_leaderboard, rank_scores, rank_task, ranking_scheme, separating_samples,
    smallest_p_value,
)


def test_rank_scores_share_ties_as_the_notebooks():
    # ranking_utils.py's own example scores [0, 2, 4, 3, 4, 0], read as "beaten by": six places on
    # linspace(.1, 1, 6) = .1 .28 .46 .64 .82 1. Beaten 4 (x2) share places 0-1: (.1 + .28) / 2 = .19;
    # beaten 3: .46; beaten 2: .64; beaten 0 (x2) share places 4-5: (.82 + 1) / 2 = .91.
    np.testing.assert_allclose(rank_scores(np.array([0, 2, 4, 3, 4, 0])), [.91, .64, .19, .46, .19, .91])


def test_all_tied_and_single_method():
    np.testing.assert_allclose(rank_scores(np.array([0, 0, 0])), [0.55, 0.55, 0.55])  # mean of .1 .55 1
    np.testing.assert_allclose(rank_scores(np.array([0])), [0.1])


def test_beaten_counts_use_the_rank_sum_test():
    # 10 samples each: A all above B and C, which interleave. Fully separated groups of 10 give the rank-sum
    # z = (155 - 105) / sqrt(10 * 10 * 21 / 12) = 3.78 (p = 1.6e-4 < 0.05); B vs C is not significant.
    a = np.arange(10) + 100.0
    b = np.arange(10) * 2.0
    c = np.arange(10) * 2.0 + 1.0
    np.testing.assert_array_equal(beaten_counts(np.stack([a, b, c])), [0, 1, 1])


def test_too_few_samples_can_never_separate_two_methods():
    # perfectly separated samples give the smallest p: z = 1 / sqrt(1 * 1 * 3 / 12) = 2 for one value each
    # (p = 0.3173), z = 4.5 / sqrt(9 * 7 / 12) = 1.964 for three (p = 0.0495, the first below 0.05)
    assert smallest_p_value(1) == pytest.approx(0.3173, abs=1e-4)
    assert smallest_p_value(2) > 0.05 > smallest_p_value(3)
    assert separating_samples() == 3
    two = np.array([[10.0, 11.0], [0.0, 1.0], [5.0, 6.0]])
    np.testing.assert_array_equal(beaten_counts(two), [0, 0, 0])  # as far apart as can be, still no beat
    np.testing.assert_array_equal(beaten_counts(np.array([[10.0, 11, 12], [0.0, 1, 2]])), [0, 1])


def long_table(values: dict[str, list[float]], metric: str, labels: list | None = None) -> pd.DataFrame:
    """One row per (method, case[, label]) value."""
    rows = []
    for method, samples in values.items():
        for i, value in enumerate(samples):
            label = labels[i] if labels else None
            rows.append((method, f"case{i if labels is None else i // 2}", label, metric, value))
    return pd.DataFrame(rows, columns=["method", "pair", "label", "metric", "value"])


def test_hand_worked_example_three_methods_one_clearly_better():
    # SDlogJ over 10 cases (lower is better): "good" is far below "ok" and "meh", which interleave.
    # good is beaten by nobody -> place 2 of 0..2 -> 1.0; ok and meh are beaten once each and share
    # places 0 and 1 -> (.1 + .55) / 2 = .325. One ranked metric: the task score is that rank score.
    table = long_table({"good": list(np.linspace(0.01, 0.02, 10)),
                        "ok": list(np.linspace(0.10, 0.20, 10)),
                        "meh": list(np.linspace(0.105, 0.205, 10))}, "LogJacDetStd")
    ranks = rank_task(table, initial="none")
    assert ranks.index.tolist()[0] == "good"
    assert ranks.loc["good", "rank_LogJacDetStd"] == pytest.approx(1.0)
    assert ranks.loc["ok", "rank_LogJacDetStd"] == pytest.approx(0.325)
    assert ranks.loc["meh", "rank_LogJacDetStd"] == pytest.approx(0.325)
    assert ranks["score"].tolist() == pytest.approx([1.0, 0.325, 0.325])
    assert ranks["place"].tolist() == [1, 2, 2]
    assert ranks.loc["good", "LogJacDetStd"] == pytest.approx(0.015)


def label_task_table(rng) -> pd.DataFrame:
    """Dice and HD95 over 20 cases x 2 labels and SDlogJ per case for an initial result and three methods."""
    frames = []
    quality = {"initial": 0.5, "strong": 0.85, "weak": 0.7, "weaker": 0.69}
    for method, dice_level in quality.items():
        for case in range(20):
            key = f"case{case}"
            for label in (1, 2):
                dice = np.clip(dice_level + 0.05 * rng.standard_normal(), 0, 1)
                frames.append((method, key, label, "DSC", dice))
                frames.append((method, key, label, "HD95", 10 * (1 - dice)))
            frames.append((method, key, None, "LogJacDetStd", 0.0 if method == "initial" else 0.05))
    return pd.DataFrame(frames, columns=["method", "pair", "label", "metric", "value"])


def test_label_task_scheme_and_geometric_mean(rng):
    table = label_task_table(rng)
    assert [m.name for m in ranking_scheme(table["metric"].unique())] == ["DSC", "DSC30", "HD95", "LogJacDetStd"]
    ranks = rank_task(table)
    assert ranks.index[0] == "strong"
    columns = ["rank_DSC", "rank_DSC30", "rank_HD95", "rank_LogJacDetStd"]
    expected = np.prod(ranks[columns].to_numpy(), axis=1) ** (1 / 4)
    np.testing.assert_allclose(ranks["score"], expected)
    # samples per method the test compared: 20 cases x 2 labels, the hardest 30 % of them, one per case
    assert ranks.loc["strong", ["n_DSC", "n_DSC30", "n_HD95", "n_LogJacDetStd"]].tolist() == [40, 12, 40, 20]
    # The initial result's perfect SDlogJ (0) counts as missing (1.5): it cannot win that metric.
    assert ranks.loc["initial", "LogJacDetStd"] == 1.5
    assert ranks.loc["initial", "rank_LogJacDetStd"] == pytest.approx(0.1)


def test_dice30_keeps_the_samples_hardest_for_the_initial_result():
    # 10 (case, label) samples, round(0.3 * 10) = 3 kept: those where the initial Dice is lowest (cases 7-9).
    initial = [0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.1, 0.2, 0.3]
    method = [1.0] * 7 + [0.2, 0.4, 0.6]
    rows = [(name, f"case{i}", 1, "DSC", v) for name, values in (("initial", initial), ("m", method))
            for i, v in enumerate(values)]
    table = pd.DataFrame(rows, columns=["method", "pair", "label", "metric", "value"])
    ranks = rank_task(table, scheme=[RankedMetric("DSC30", "DSC", True, 0.3)])
    assert ranks.loc["m", "DSC30"] == pytest.approx(0.4)  # mean of 0.2, 0.4, 0.6
    assert ranks.loc["initial", "DSC30"] == pytest.approx(0.2)  # mean of 0.1, 0.2, 0.3


def test_keypoint_task_counts_tre_once_and_tre30_takes_the_largest_initial_errors():
    names = [m.name for m in ranking_scheme(["TRE_lm", "TRE_kp", "LogJacDetStd", "Runtime_s"])]
    assert names == ["TRE_lm", "TRE_lm30", "TRE_kp", "LogJacDetStd", "Runtime_s"]
    assert [m.name for m in ranking_scheme(["TRE_kp", "LogJacDetStd"], runtime=False)] == \
        ["TRE_kp", "TRE_kp30", "LogJacDetStd"]
    initial = [1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0, 0.5]  # 10 points: the 3 largest are 9, 8, 7
    method = [0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0]
    rows = [(name, "case0", i, "TRE_kp", v) for name, values in (("initial", initial), ("m", method))
            for i, v in enumerate(values)]
    table = pd.DataFrame(rows, columns=["method", "pair", "label", "metric", "value"])
    ranks = rank_task(table, scheme=[RankedMetric("TRE_kp30", "TRE_kp", False, 0.3)])
    assert ranks.loc["m", "TRE_kp30"] == pytest.approx(2.0)  # points 1, 3, 5: mean of 1, 2, 3


def test_missing_and_invalid_values_are_substituted():
    # "b" has no row for case1 (a missing case) and an infinite HD95 for case0: both count as 10.
    rows = [("a", "case0", 1, "HD95", 1.0), ("a", "case1", 1, "HD95", 2.0), ("b", "case0", 1, "HD95", np.inf)]
    table = pd.DataFrame(rows, columns=["method", "pair", "label", "metric", "value"])
    ranks = rank_task(table, scheme=[RankedMetric("HD95", "HD95", False)])
    assert ranks.loc["b", "HD95"] == 10.0
    assert ranks.loc["a", "HD95"] == 1.5


def test_without_an_initial_result_robustness_metrics_are_left_out(rng):
    table = label_task_table(rng)
    ranks = rank_task(table[table["method"] != "initial"])
    assert "rank_DSC30" not in ranks.columns and "rank_DSC" in ranks.columns


def test_overall_leaderboard_is_the_mean_of_task_scores_with_absent_tasks_at_0_1():
    task_a = pd.DataFrame({"score": [1.0, 0.5]}, index=pd.Index(["x", "y"], name="method"))
    task_b = pd.DataFrame({"score": [0.8]}, index=pd.Index(["y"], name="method"))
    board = overall_leaderboard({"a": task_a, "b": task_b})
    # x: (1.0 + 0.1) / 2 = 0.55; y: (0.5 + 0.8) / 2 = 0.65
    assert board.index.tolist() == ["y", "x"]
    assert board["score"].tolist() == pytest.approx([0.65, 0.55])
    assert board.loc["x", "b"] == 0.1
    assert board["place"].tolist() == [1, 2]


def test_ranks_methods_from_their_metrics_tables(make_dataset, tmp_path):
    """End to end on a keypoint task: the true field beats a noisy copy of it, which beats the initial result."""
    from regbench import io
    from regbench.displacement import Displacement
    from scipy import ndimage

    from regbench.metrics.evaluate import evaluate_folder, write_evaluation

    rng = np.random.default_rng(11)
    task = make_dataset(rng, n_labels=0, n_pairs=3, n_keypoints=30, groundtruth=True)
    tables = []
    for method in ("initial", "truth", "noisy"):
        for pair in task.pair_ids("val"):
            field = task.load_groundtruth(pair).data
            if method == "initial":
                field = np.zeros_like(field)
            elif method == "noisy":
                field = field + ndimage.gaussian_filter(rng.standard_normal(field.shape), (2, 2, 2, 0)) * 3
            io.write_disp(tmp_path / method / f"{pair.disp_stem}.nii.gz", Displacement(field))
        write_evaluation(evaluate_folder(task, tmp_path / method), tmp_path / f"{method}_out")
        tables.append(pd.read_csv(tmp_path / f"{method}_out" / "metrics.csv").assign(method=method))
    ranks = rank_task(pd.concat(tables))
    assert [c for c in ranks.columns if c.startswith("rank_")] == ["rank_TRE_kp", "rank_TRE_kp30", "rank_LogJacDetStd"]
    assert ranks.index.tolist() == ["truth", "noisy", "initial"]
    # 90 keypoints per method: the TRE differences are significant, so the three places are distinct.
    assert ranks["rank_TRE_kp"].tolist() == pytest.approx([1.0, 0.55, 0.1])
    assert ranks.loc["initial", "LogJacDetStd"] == 5.0  # a keypoint task: the initial's SDlogJ counts as missing


def test_nothing_to_rank_is_an_error():
    table = pd.DataFrame([("a", "case0", None, "FoldingFraction", 0.0)],
                         columns=["method", "pair", "label", "metric", "value"])
    with pytest.raises(ValueError, match="nothing to rank"):
        rank_task(table)
