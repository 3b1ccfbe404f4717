"""The robustness track's table: per task, method and budget the mean accuracy over pairs on clean pairs, under
random chains and under the adversarial chain, and which searches found the adversarial chains."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

KINDS = ("clean", "random", "adversarial")


def robustness_summary(tables: Mapping[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """Columns ``task, method, budget, metric, clean, random, adversarial, pairs, found_by`` from each (task,
    method)'s per-pair table (``regbench.robustness.track``); failed pairs are left out and counted in ``failed``."""
    rows = []
    for (task, method), table in tables.items():
        scored = table[table["kind"] != "failed"]
        clean = scored[scored["kind"] == "clean"].set_index("pair")["accuracy"]
        for budget, rows_at in scored[scored["kind"] != "clean"].groupby("budget"):
            by_kind = {kind: rows_at[rows_at["kind"] == kind] for kind in KINDS[1:]}
            searches = by_kind["adversarial"]["search"].value_counts()
            rows.append({
                "task": task, "method": method, "budget": float(budget),
                "metric": scored["metric"].iloc[0],
                "clean": clean.loc[by_kind["adversarial"]["pair"]].mean(),
                "random": by_kind["random"]["accuracy"].mean(),
                "adversarial": by_kind["adversarial"]["accuracy"].mean(),
                "pairs": len(by_kind["adversarial"]),
                "failed": int((table["kind"] == "failed").sum()),
                "found_by": ", ".join(f"{name} {count}" for name, count in searches.items()),
            })
    return pd.DataFrame(rows, columns=["task", "method", "budget", "metric", "clean", "random", "adversarial",
                                       "pairs", "failed", "found_by"])
