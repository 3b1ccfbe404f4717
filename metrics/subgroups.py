"""Subgroup analysis: is a method as accurate for one group of subjects as for the others?

For a task whose dataset json records each subject's covariates (``covariates``, keyed by the four-digit
subject number; ``cardiac_cohort`` does), each evaluation pair belongs to its fixed image's subject. Per method,
covariate and subgroup (age in 20-year groups, sex, systolic pressure below 120 / 120-139 / from 140 mmHg):
the number of scored pairs, the mean DSC and HD95, and the gap to the other subgroups (this subgroup's mean
minus the mean of all other pairs) with a percentile bootstrap 95 % interval (pairs resampled within the
subgroup and within the rest, ``RESAMPLES`` times, fixed seed). An interval that excludes 0 says the gap is
more than the spread of the pairs explains.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from regbench import io
from regbench.errors import DatasetError

METRICS = ("DSC", "HD95")
RESAMPLES = 2000
SUBGROUP_COLUMNS = ["method", "covariate", "subgroup", "n", *METRICS,
                    *(f"{m}_gap{suffix}" for m in METRICS for suffix in ("", "_low", "_high"))]


def _age_group(age: float) -> str:
    low = 20 * int(age // 20)
    return f"{low}-{low + 20}"


def _pressure_group(pressure: float) -> str:
    return "<120" if pressure < 120 else ("120-139" if pressure < 140 else ">=140")


GROUPINGS: dict[str, tuple[str, Callable[[float], str]]] = {  # covariate -> (json key, subgroup of a value)
    "age": ("age", _age_group),
    "sex": ("male", lambda male: "male" if male else "female"),
    "systolic_bp": ("systolic_bp", _pressure_group),
}


def pair_subgroups(dataset_json: str | Path, pairs: list[str]) -> pd.DataFrame:
    """Each pair's subgroup per covariate (index: pair key ``SSSS_MMMM<--...``, columns: ``GROUPINGS``), from
    the covariates of its fixed image's subject."""
    path = Path(dataset_json)
    try:
        recorded = json.loads(path.read_text())["covariates"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(path, f"records no subject covariates ({type(err).__name__}: {err})") from err
    rows = {}
    for pair in pairs:
        subject = pair.split("_", 1)[0]
        if subject not in recorded:
            raise DatasetError(path, f"records no covariates for subject {subject} (pair {pair})")
        rows[pair] = {name: group(recorded[subject][key]) for name, (key, group) in GROUPINGS.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def bootstrap_gap(inside: np.ndarray, outside: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """mean(inside) - mean(outside) and its percentile bootstrap 95 % interval."""
    gap = float(inside.mean() - outside.mean())
    draws = (rng.choice(inside, (RESAMPLES, inside.size)).mean(axis=1)
             - rng.choice(outside, (RESAMPLES, outside.size)).mean(axis=1))
    low, high = np.percentile(draws, [2.5, 97.5])
    return gap, float(low), float(high)


def subgroup_table(cases: pd.Series, groups: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """The subgroup table (``SUBGROUP_COLUMNS``) from each scored case's metric values (a Series indexed by
    method, metric, pair: ``leaderboard.case_values``) and each pair's subgroups (``pair_subgroups``)."""
    rng = np.random.default_rng(seed)
    wide = cases[cases.index.get_level_values("metric").isin(METRICS)].unstack("metric")
    rows = []
    for method, values in wide.groupby(level="method", sort=True):
        values = values.droplevel("method")
        for covariate in groups.columns:
            labels = groups[covariate].reindex(values.index)
            for subgroup in sorted(labels.dropna().unique()):
                row = {"method": method, "covariate": covariate, "subgroup": subgroup,
                       "n": int((labels == subgroup).sum())}
                for metric in METRICS:
                    column = values[metric] if metric in values else pd.Series(dtype=float)
                    inside = column[labels == subgroup].dropna().to_numpy()
                    outside = column[labels != subgroup].dropna().to_numpy()
                    row[metric] = float(inside.mean()) if inside.size else float("nan")
                    gap = bootstrap_gap(inside, outside, rng) if inside.size and outside.size else (float("nan"),) * 3
                    row.update(dict(zip((f"{metric}_gap", f"{metric}_gap_low", f"{metric}_gap_high"), gap)))
                rows.append(row)
    return pd.DataFrame(rows, columns=SUBGROUP_COLUMNS)


def write_subgroups(table: pd.DataFrame, csv_path: str | Path, md_path: str | Path) -> None:
    """The table as CSV (every digit) and Markdown (four significant digits), atomically."""
    with io.atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    with io.atomic_path(md_path) as tmp:
        tmp.write_text(table.to_markdown(index=False, floatfmt=".4g") + "\n")
