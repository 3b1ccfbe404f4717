"""The robustness track's summary table, on hand-made per-pair tables."""

from __future__ import annotations

import pandas as pd
import pytest

from regbench.metrics.adversarial import robustness_summary


def _rows(pair: str, clean: float, random: float, adversarial: float, search: str) -> list[dict]:
    return [{"pair": pair, "budget": 0.0, "kind": "clean", "search": "none", "metric": "DSC", "accuracy": clean},
            {"pair": pair, "budget": 1.0, "kind": "random", "search": "random", "metric": "DSC", "accuracy": random},
            {"pair": pair, "budget": 1.0, "kind": "adversarial", "search": search, "metric": "DSC",
             "accuracy": adversarial}]


def test_means_over_pairs_per_budget_with_the_searches_that_found_the_chains():
    table = pd.DataFrame([*_rows("a", 0.9, 0.8, 0.5, "cma-es"), *_rows("b", 0.7, 0.6, 0.3, "random"),
                          {"pair": "c", "kind": "failed", "message": "ValueError: broken"}])
    summary = robustness_summary({("brain_mr", "affine"): table})
    row = summary.iloc[0]
    assert (row["task"], row["method"], row["budget"], row["metric"]) == ("brain_mr", "affine", 1.0, "DSC")
    assert row[["clean", "random", "adversarial"]].tolist() == pytest.approx([0.8, 0.7, 0.4])
    assert (row["pairs"], row["failed"]) == (2, 1)
    assert row["found_by"] == "cma-es 1, random 1"
