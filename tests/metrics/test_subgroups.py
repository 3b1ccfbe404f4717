"""Subgroup analysis: known gaps are found with intervals that exclude zero, equal groups give intervals that
include it, and pairs map to their fixed subject's covariates."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from regbench.errors import DatasetError
from regbench.metrics.subgroups import SUBGROUP_COLUMNS, pair_subgroups, subgroup_table, write_subgroups


def _dataset(tmp_path, covariates):
    path = tmp_path / "cohort_dataset.json"
    path.write_text(json.dumps({"name": "cohort", "covariates": covariates}))
    return path


def _cases(values: dict[str, dict[str, float]], method: str = "m") -> pd.Series:
    rows = [(method, metric, pair, value) for pair, metrics in values.items() for metric, value in metrics.items()]
    return pd.DataFrame(rows, columns=["method", "metric", "pair", "value"]).set_index(
        ["method", "metric", "pair"])["value"]


def test_pairs_take_their_fixed_subjects_groups(tmp_path):
    path = _dataset(tmp_path, {"0001": {"age": 25.0, "male": 0, "systolic_bp": 118.0},
                               "0002": {"age": 71.0, "male": 1, "systolic_bp": 150.0}})
    groups = pair_subgroups(path, ["0001_0000<--0001_0001", "0002_0000<--0002_0001"])
    assert groups.loc["0001_0000<--0001_0001"].tolist() == ["20-40", "female", "<120"]
    assert groups.loc["0002_0000<--0002_0001"].tolist() == ["60-80", "male", ">=140"]
    with pytest.raises(DatasetError, match="cohort_dataset.json.*subject 0003"):
        pair_subgroups(path, ["0003_0000<--0003_0001"])
    with pytest.raises(DatasetError, match="records no subject covariates"):
        pair_subgroups(tmp_path / "missing.json", [])


def test_a_known_gap_excludes_zero_and_equal_groups_include_it(tmp_path):
    rng = np.random.default_rng(0)
    covariates, values = {}, {}
    for subject in range(1, 41):
        male = subject % 2
        covariates[f"{subject:04d}"] = {"age": 30.0 + subject, "male": male, "systolic_bp": 125.0}
        # men 0.1 lower DSC than women; HD95 the same for both
        values[f"{subject:04d}_0000<--{subject:04d}_0001"] = {
            "DSC": 0.85 - 0.1 * male + 0.01 * rng.standard_normal(), "HD95": 3.0 + rng.standard_normal()}
    groups = pair_subgroups(_dataset(tmp_path, covariates), list(values))
    table = subgroup_table(_cases(values), groups)
    assert list(table.columns) == SUBGROUP_COLUMNS
    men = table[(table.covariate == "sex") & (table.subgroup == "male")].iloc[0]
    assert men.n == 20
    assert men.DSC_gap == pytest.approx(-0.1, abs=0.01)
    assert -0.2 < men.DSC_gap_low and men.DSC_gap_high < 0
    assert men.HD95_gap_low < 0 < men.HD95_gap_high
    assert set(table[table.covariate == "age"].subgroup) == {"20-40", "40-60", "60-80"}
    again = subgroup_table(_cases(values), groups)
    pd.testing.assert_frame_equal(table, again)  # the bootstrap is seeded


def test_written_atomically_as_csv_and_markdown(tmp_path):
    table = pd.DataFrame([["m", "sex", "male", 3, 0.8, 4.0, -0.1, -0.2, 0.0, 1.0, 0.5, 1.5]],
                         columns=SUBGROUP_COLUMNS)
    write_subgroups(table, tmp_path / "s.csv", tmp_path / "s.md")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "s.csv"), table)
    assert "| method" in (tmp_path / "s.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv", "s.md"]
