"""Plot-ready tables from the long metrics table: case values, primary metric, typical pair, per-label Dice."""

import numpy as np
import pandas as pd

from regbench.report.results import (
    DICE, TRE_KEYPOINTS, case_table, label_means, method_means, primary_metric, read_benchmark,
    representative_pair, validation_curves,
)


def _long(rows: list[tuple[str, str, float | None, str, float]]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=["method", "pair", "label", "metric", "value"])
    table["label"] = table["label"].astype("Int64")
    return table


TABLE = _long([
    # pair p1: affine Dice 0.8 and 0.6 on labels 1 and 2 (case mean 0.7), identity 0.5 and 0.3 (0.4)
    ("affine", "p1", 1, "DSC", 0.8), ("affine", "p1", 2, "DSC", 0.6), ("affine", "p1", None, "Failed", 0),
    ("identity", "p1", 1, "DSC", 0.5), ("identity", "p1", 2, "DSC", 0.3), ("identity", "p1", None, "Failed", 0),
    # pair p2: affine failed (its substitute zeros must not count), identity 0.2 and 0.2
    ("affine", "p2", 1, "DSC", 0.0), ("affine", "p2", 2, "DSC", 0.0), ("affine", "p2", None, "Failed", 1),
    ("identity", "p2", 1, "DSC", 0.2), ("identity", "p2", 2, "DSC", 0.2), ("identity", "p2", None, "Failed", 0),
    # pair p3: both 0.9 on label 1, label 2 NaN (absent): the case mean is the label-1 value
    ("affine", "p3", 1, "DSC", 0.9), ("affine", "p3", 2, "DSC", np.nan), ("affine", "p3", None, "Failed", 0),
    ("identity", "p3", 1, "DSC", 0.9), ("identity", "p3", 2, "DSC", np.nan), ("identity", "p3", None, "Failed", 0),
])


def test_case_values_leave_out_failed_cases_and_average_labels():
    cases = case_table(TABLE).set_index(["method", "pair"])["value"]
    assert cases.to_dict() == {("affine", "p1"): 0.7, ("affine", "p3"): 0.9,
                               ("identity", "p1"): 0.4, ("identity", "p2"): 0.2, ("identity", "p3"): 0.9}
    assert method_means(case_table(TABLE), DICE).round(6).to_dict() == {"affine": 0.8, "identity": 0.5}


def test_representative_pair_is_nearest_the_median_over_methods():
    # means over methods per pair: p1 (0.7 + 0.4) / 2 = 0.55, p2 0.2, p3 0.9; the median is 0.55
    assert representative_pair(case_table(TABLE), DICE) == "p1"
    assert representative_pair(case_table(TABLE), TRE_KEYPOINTS) is None


def test_primary_metric_is_tre_where_there_are_keypoints_else_dice():
    assert primary_metric(case_table(TABLE)) == DICE
    tre = _long([("affine", "p1", 0, "TRE_kp", 2.0), ("affine", "p1", None, "Failed", 0)])
    assert primary_metric(case_table(tre)) == TRE_KEYPOINTS
    # a lung task with labels and keypoints (thorax_ct): TRE, not the Dice of the whole lungs
    assert primary_metric(case_table(pd.concat([TABLE, tre[tre["metric"] == "TRE_kp"]]))) == TRE_KEYPOINTS


def test_label_means_by_name_in_label_order():
    means = label_means(TABLE, {2: "spleen", 1: "liver", 3: "absent"})
    # affine: label 1 over p1, p3 = (0.8 + 0.9) / 2; identity: (0.5 + 0.2 + 0.9) / 3; label 2 NaN rows skipped
    assert list(means.columns) == ["spleen", "liver"]
    np.testing.assert_allclose(means.loc["affine", "liver"], 0.85)
    np.testing.assert_allclose(means.loc["identity", "liver"], 1.6 / 3)
    np.testing.assert_allclose(means.loc["identity", "spleen"], 0.25)


def test_read_benchmark(tmp_path):
    path = tmp_path / "b.tsv"
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\n25.49\t0:00:25\t242.91\t617.21\n")
    assert read_benchmark(path) == {"s": 25.49, "max_rss": 242.91}
    assert read_benchmark(tmp_path / "absent.tsv") == {}


def test_validation_curves_read_curves_with_and_without_tre(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text("step,dice,best\n50,0.8,True\n")
    new = tmp_path / "new.csv"
    new.write_text("step,dice,tre_mm,best\n50,0.9,2.5,True\n")
    table = validation_curves({("cardiac", "vm"): old, ("thorax", "vm"): new})
    assert list(table.columns) == ["task", "method", "step", "dice", "tre_mm", "best"]
    assert np.isnan(table.loc[0, "tre_mm"]) and table.loc[1, "tre_mm"] == 2.5
