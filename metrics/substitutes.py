"""What a missing or invalid result scores as: one rule per metric and task type, shared by scoring and ranking.

The official ranking notebooks (MDL-UzL/L2R ``ranking/``) substitute values before ranking, but not
consistently. What they do, and what regbench does:

============  =====================================================  ========================================
metric        notebooks                                              regbench
============  =====================================================  ========================================
Dice          NaN -> 0; missing result -> 0 (all notebooks)          NaN -> 0; missing case -> 0
HD95          NaN and inf -> 10 (OASIS, AbdomenMRCT); missing        NaN, inf and missing case -> 10, so a
              result file -> 5, better than a failed label;          failure never scores better than a
              ThoraxCBCT: ``nan_to_num`` (NaN -> 0, inf -> 1.8e308)  label it got wrong
TRE           LungCT: NaN -> 0 and missing -> 0 (zero-initialised    NaN and missing case -> 30 mm, the value
              array; a dead line ``nan_to_num(tre, nan=30)``);       LungCT's unused line meant to use
              NLST: no substitution
SDlogJ        missing -> 1.5 (OASIS, AbdomenMRCT) or 5 (LungCT,      missing case or NaN -> 1.5 on label
              NLST, ThoraxCBCT); the Initial entry gets the same     tasks, 5 on keypoint tasks; the initial
              (NLST sets only its last case: a loop-variable slip)   entry gets it for every case
runtime (s)   missing -> 5000 (OASIS, AbdomenMRCT) or 3500           missing case -> 5000 on label tasks,
              (LungCT); Initial gets the same                        3500 on keypoint tasks; initial too
============  =====================================================  ========================================

A task is a *label* task when its evaluation scores Dice, else a *keypoint* task.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

TaskKind = Literal["labels", "keypoints"]
Kind = Literal["dice", "hd95", "tre", "sdlogj", "runtime"]

RUNTIME = "Runtime_s"
KIND_OF_NAME: dict[str, Kind] = {
    "DSC": "dice", "HD95": "hd95", "TRE_kp": "tre", "TRE_lm": "tre", "LogJacDetStd": "sdlogj", RUNTIME: "runtime",
}

_INVALID: dict[Kind, float] = {"dice": 0.0, "hd95": 10.0, "tre": 30.0}
_MISSING: dict[Kind, dict[TaskKind, float]] = {
    "sdlogj": {"labels": 1.5, "keypoints": 5.0},
    "runtime": {"labels": 5000.0, "keypoints": 3500.0},
}


def task_kind(kinds: set[str]) -> TaskKind:
    """``labels`` if Dice is among the evaluated metric kinds, else ``keypoints``."""
    return "labels" if "dice" in kinds else "keypoints"


def missing_value(kind: Kind, task: TaskKind) -> float:
    """The score of a value that is missing (no field, an invalid field, no runtime) or NaN."""
    if kind in _INVALID:
        return _INVALID[kind]
    return _MISSING[kind][task]


def substitute(values: ArrayLike, kind: Kind, task: TaskKind) -> np.ndarray:
    """``values`` with every NaN or infinite entry replaced by ``missing_value`` (an infinite HD95, from an
    empty warped label, counts as a failed one)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values), values, missing_value(kind, task))
