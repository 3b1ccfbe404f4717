"""The robustness track on one task for one method: the records of ``search`` for the first pairs of a split,
as one table (a failing pair is recorded by name and the others go on, as in ``register``)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import pandas as pd

from regbench.dataset import Split, Task
from regbench.method import Method
from regbench.robustness.search import RobustnessRecord, SearchSettings, robustness_records

log = logging.getLogger(__name__)

COLUMNS = ["pair", *[f.name for f in dataclasses.fields(RobustnessRecord) if f.name != "pair"], "message"]


def robustness_table(method: Method, task: Task, *, split: Split, pairs: int, budgets: Sequence[float],
                     settings: SearchSettings) -> pd.DataFrame:
    """One row per pair, budget and kind (``clean``, ``random``, ``adversarial``) for the first ``pairs`` pairs of
    ``split``; a pair that fails gets one row with ``kind`` ``failed`` and the reason in ``message``."""
    rows: list[dict] = []
    for pair_id in task.pair_ids(split)[:pairs]:
        try:
            records = robustness_records(method, task.load_pair(pair_id), budgets, task.load_groundtruth(pair_id),
                                         settings=settings)
            rows += [{**dataclasses.asdict(record), "message": ""} for record in records]
            log.info("%s: %s", pair_id.key, "; ".join(f"{r.kind} {r.budget:g}: {r.metric} {r.accuracy:.4g} "
                                                       f"({r.search})" for r in records))
        except Exception as err:  # noqa: BLE001 — a failure on one pair must not stop the others
            message = f"{type(err).__name__}: {err}".replace("\n", " ")
            rows.append({"pair": pair_id.key, "kind": "failed", "message": message})
            log.error("%s FAILED: %s", pair_id.key, message)
    return pd.DataFrame(rows, columns=COLUMNS)
