"""Running a method on a task: training once, then registering every evaluation pair of a split.

This is what the workflow's ``train`` and ``register`` rules call. A pair on which the method fails (an
exception, or an output that fails the interface's checks) is recorded as failed with a one-line message,
and the other pairs go on; the evaluation then scores it as Learn2Reg scores a missing case.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from regbench import io
from regbench.dataset import Split, Task
from regbench.pair import CaseId, PairId
from regbench.pretrained import VALIDATION_COLUMNS, VALIDATION_LOG
from regbench.progress import Progress

if TYPE_CHECKING:  # the evaluate job reads RUNTIME_FILE from here and must not pay for torch
    from regbench.displacement import Displacement
    from regbench.method import Method
    from regbench.methods.components.instance import InstanceOptimised

log = logging.getLogger(__name__)
RUNTIME_FILE = "runtime.csv"
MAX_TRAINING_PAIRS = 10_000  # inter-subject training pairs listed at most (a sample beyond that)
PAIR_SAMPLING_SEED = 0


def training_pairs(task: Task) -> list[PairId]:
    """The pairs a learning method trains on, from training cases only (never an evaluation case).

    Uses the dataset's ``training_paired_images`` where it lists any; otherwise, for paired (intra-subject)
    tasks, each training subject's images in the modality order of the evaluation pairs, and for unpaired
    (inter-subject) tasks ordered pairs of distinct training cases (``sample_ordered_pairs``).
    """
    allowed = set(task.training_cases())
    listed = [PairId(CaseId.from_path(p["fixed"]), CaseId.from_path(p["moving"]))
              for p in task.description.get("training_paired_images") or []]
    if listed:
        return [p for p in listed if p.fixed in allowed and p.moving in allowed]
    if task.description.get("pairings") == "paired":
        reference = (task.pair_ids("val") + task.pair_ids("test"))[0]
        candidates = [PairId(CaseId(c.case, reference.fixed.modality), CaseId(c.case, reference.moving.modality))
                      for c in sorted(allowed) if c.modality == reference.fixed.modality]
        return [p for p in candidates if p.moving in allowed]
    return sample_ordered_pairs(sorted(allowed))


def sample_ordered_pairs(cases: Sequence[CaseId], limit: int = MAX_TRAINING_PAIRS) -> list[PairId]:
    """Every ordered pair of distinct ``cases`` when there are at most ``limit``, else ``limit`` of them drawn
    uniformly without replacement (seeded, so the same cases give the same pairs). Never builds all n^2 pairs:
    LUMIR's 3384 training images would make 11 million."""
    n = len(cases)
    if n * (n - 1) <= limit:
        return [PairId(f, m) for f in cases for m in cases if f != m]
    rng = np.random.default_rng(PAIR_SAMPLING_SEED)
    chosen: dict[tuple[int, int], None] = {}
    while len(chosen) < limit:
        fixed, moving = rng.integers(n, size=(2, limit))
        for f, m in zip(fixed.tolist(), moving.tolist()):
            if f != m and len(chosen) < limit:
                chosen[f, m] = None
    return [PairId(cases[f], cases[m]) for f, m in chosen]


def train(method: Method, task: Task, model_path: Path, workdir: Path, curve_path: Path | None = None) -> None:
    """Train ``method`` on the task's training pairs and save its state to ``model_path``; with ``curve_path``,
    copy its validation curve there (``regbench.training``; a table without rows where it has none)."""
    pairs = training_pairs(task)
    log.info("training %s on %s: %d pairs, %r", method.name, task.name, len(pairs), method)
    method.train(task, pairs, workdir)
    method.save(model_path)
    log.info("saved %s", model_path)
    if curve_path is not None:
        written = Path(workdir) / VALIDATION_LOG
        curve = pd.read_csv(written) if written.is_file() else pd.DataFrame(columns=VALIDATION_COLUMNS)
        with io.atomic_path(curve_path) as tmp:
            curve.to_csv(tmp, index=False)


def register_split(method: Method, task: Task, out_dir: Path, *, split: Split = "test",
                   refined: tuple[InstanceOptimised, Path] | None = None) -> pd.DataFrame:
    """Register every pair of ``split``, writing ``disp_*.nii.gz`` and ``runtime.csv`` into ``out_dir``.

    ``runtime.csv`` has one row per pair: ``pair`` (the official case key), ``runtime_s`` (the method's own
    time, IO excluded; empty for a failure), ``status`` (``ok`` or ``failed``) and ``message``. With ``refined``
    (an ``InstanceOptimised`` of ``method`` and its folder), each field is also refined and written there, with
    its own ``runtime.csv`` (the method's time plus the refinement's): the ``<method>+io`` row, at the cost of one
    registration per pair, not two.
    """
    outputs = [(method, out_dir)] + ([refined] if refined else [])
    rows: dict[Path, list[dict]] = {folder: [] for _, folder in outputs}
    for _, folder in outputs:
        folder.mkdir(parents=True, exist_ok=True)
    pair_ids = task.pair_ids(split)
    log.info("registering %d %s pairs of %s with %s", len(pair_ids), split, task.name,
             " and ".join(repr(m) for m, _ in outputs))
    progress = Progress(len(pair_ids), what=f"register {method.name} on {task.name}", every=1, logger=log)
    for pair_id in pair_ids:
        try:
            pair = task.load_pair(pair_id, with_labels=False).blind()
            disp, seconds = method.timed_register(pair)
            rows[out_dir].append(_written(out_dir, pair_id, disp, seconds))
        except Exception as err:  # noqa: BLE001 — any failure of one pair must not stop the others
            for _, folder in outputs:
                rows[folder].append(_failed(pair_id, err))
        else:
            if refined:
                refiner, folder = refined
                try:
                    rows[folder].append(_written(folder, pair_id, *refiner.timed_refine(pair, disp, seconds)))
                except Exception as err:  # noqa: BLE001
                    rows[folder].append(_failed(pair_id, err))
        named = [(m.name if m is not method else "", rows[folder][-1]) for m, folder in outputs]
        failures = [f"{name} FAILED: {row['message']}".lstrip() for name, row in named if row["status"] == "failed"]
        progress.step(" ".join([pair_id.key, *failures]), level=logging.ERROR if failures else logging.INFO,
                      **{f"runtime_s {name}".rstrip(): row["runtime_s"] for name, row in named
                         if row["status"] == "ok"})
    tables = [_write_runtimes(folder, rows[folder], m.name if m is not method else "") for m, folder in outputs]
    return tables[0]


def _written(folder: Path, pair_id: PairId, disp: Displacement, seconds: float) -> dict:
    io.write_disp(folder / f"{pair_id.disp_stem}.nii.gz", disp)
    return {"pair": pair_id.key, "runtime_s": seconds, "status": "ok", "message": ""}


def _failed(pair_id: PairId, err: Exception) -> dict:
    return {"pair": pair_id.key, "runtime_s": None, "status": "failed",
            "message": f"{type(err).__name__}: {err}".replace("\n", " ")}


def _write_runtimes(folder: Path, rows: list[dict], name: str) -> pd.DataFrame:
    """``folder``'s runtime.csv; ``name`` is the row's name in the log where the job writes a second row."""
    table = pd.DataFrame(rows, columns=["pair", "runtime_s", "status", "message"])
    failed = int((table["status"] == "failed").sum())
    log.log(logging.WARNING if failed else logging.INFO, "registered %d pairs, %d failed%s", len(table) - failed,
            failed, f" ({name})" if name else "")
    with io.atomic_path(folder / RUNTIME_FILE) as tmp:
        table.to_csv(tmp, index=False)
    return table
