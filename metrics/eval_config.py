"""The official evaluation config (``{TASK}_{VAL|TEST}_evaluation_config.json``): read, write, or derive.

Layout, as ``evaluation/create_evaluation_config.py`` writes it::

    {"task_name": "OASIS",
     "evaluation_methods": [{"name": "LogJacDetStd", "metric": "sdlogj"},
                            {"name": "DSC", "metric": "dice", "labels": [1, ..., 35]},
                            {"name": "HD95", "metric": "hd95", "labels": [1, ..., 35]},
                            {"name": "TRE_kp", "metric": "tre", "dest": "keypoints"}],
     "expected_shape": [160, 224, 192, 3],
     "eval_pairs": [{"fixed": "./imagesTr/OASIS_0395_0000.nii.gz", "moving": "..."}],
     "eval_config_version": 0.2,
     "masked_evaluation": false}

A task without a config gets the one its files imply (``config_for_task``): SDlogJ always; Dice and HD95
over the task's labels if it has any; ``TRE_kp`` / ``TRE_lm`` where the fixed images of the split have
``keypoints*/`` / ``landmarks*/`` files; masked evaluation where they have masks (as the official configs do
for the tasks that ship masks: AbdomenMRCT, LungCT, NLST).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from regbench.dataset import Split, Task
from regbench.errors import DatasetError
from regbench.io import atomic_path
from regbench.pair import CaseId, PairId

MetricKind = Literal["sdlogj", "dice", "hd95", "tre"]
CONFIG_VERSION = 0.2


@dataclass(frozen=True)
class EvalMethod:
    """One entry of ``evaluation_methods``: the name results are stored under, the metric, and its target.

    ``labels`` are the labels Dice/HD95 score; ``dest`` is the folder TRE reads points from (``keypoints``
    or ``landmarks``; the official code appends a modality suffix for some multi-modal pairs).
    """

    name: str
    metric: MetricKind
    labels: tuple[int, ...] = ()
    dest: str | None = None

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "metric": self.metric}
        if self.metric in ("dice", "hd95"):
            entry["labels"] = list(self.labels)
        if self.metric == "tre":
            entry["dest"] = self.dest
        return entry


@dataclass(frozen=True)
class EvalConfig:
    """A parsed evaluation config. ``pairs`` keeps the official relative image paths of each pair."""

    task_name: str
    methods: tuple[EvalMethod, ...]
    expected_shape: tuple[int, ...]
    pairs: tuple[tuple[str, str], ...]
    masked: bool = False
    version: float = CONFIG_VERSION

    @property
    def pair_ids(self) -> list[PairId]:
        return [PairId(CaseId.from_path(fixed), CaseId.from_path(moving)) for fixed, moving in self.pairs]

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.expected_shape[:-1]

    def methods_of(self, metric: MetricKind) -> list[EvalMethod]:
        return [m for m in self.methods if m.metric == metric]

    def to_json(self) -> dict[str, Any]:
        return {
            "task_name": self.task_name,
            "evaluation_methods": [m.to_json() for m in self.methods],
            "expected_shape": list(self.expected_shape),
            "eval_pairs": [{"fixed": fixed, "moving": moving} for fixed, moving in self.pairs],
            "eval_config_version": self.version,
            "masked_evaluation": self.masked,
        }


def companion_file(task: Task, case: CaseId, folder: str, *, points: bool = False) -> Path:
    """A case's file in a companion folder, found as the official code finds it: ``images`` in its path
    replaced by ``folder`` (``masks``, ``landmarks``, ``keypoints01``...), and ``.csv`` for point files."""
    relative = task.image_relpath(case).replace("images", folder, 1)
    return task.resolve(relative.replace(".nii.gz", ".csv") if points else relative)


def keypoint_folder(dest: str, pair: PairId) -> str:
    """The official TRE folder for a pair: ``dest``, plus ``min(mod) + max(mod)`` (e.g. ``keypoints00000002``)
    when the modalities differ and the pair is not the 0000 -> 0001 default (evaluation.py, 2025)."""
    fixed, moving = f"{pair.fixed.modality:04d}", f"{pair.moving.modality:04d}"
    if fixed == moving or (fixed, moving) == ("0000", "0001"):
        return dest
    return dest + min(fixed, moving) + max(fixed, moving)


def config_for_task(task: Task, split: Split) -> EvalConfig:
    """The config a task's files imply (see the module docstring)."""
    pair_ids = task.pair_ids(split)
    if not pair_ids:
        raise DatasetError(task.root, f"the dataset lists no registration_{split} pairs")
    labels = tuple(sorted(task.labels))
    methods = [EvalMethod("LogJacDetStd", "sdlogj")]
    if labels:
        methods += [EvalMethod("DSC", "dice", labels), EvalMethod("HD95", "hd95", labels)]
    for name, dest in (("TRE_lm", "landmarks"), ("TRE_kp", "keypoints")):
        if all(companion_file(task, p.fixed, keypoint_folder(dest, p), points=True).is_file() for p in pair_ids):
            methods.append(EvalMethod(name, "tre", dest=dest))
    masked = all(companion_file(task, p.fixed, "masks").is_file() for p in pair_ids)
    pairs = tuple((_relative(task, p.fixed), _relative(task, p.moving)) for p in pair_ids)
    return EvalConfig(task.name, tuple(methods), (*task.shape, task.ndim), pairs, masked)


def _relative(task: Task, case: CaseId) -> str:
    relative = task.image_relpath(case)
    return relative if relative.startswith("./") else "./" + relative


def parse_eval_config(raw: Mapping[str, Any], *, where: str | Path = "evaluation config") -> EvalConfig:
    """Check and convert a loaded config json; every problem is a ``DatasetError`` naming ``where``."""
    try:
        methods = []
        for entry in raw["evaluation_methods"]:
            metric = entry["metric"]
            if metric not in get_args(MetricKind):
                raise ValueError(f"unknown metric {metric!r} (known: {', '.join(get_args(MetricKind))})")
            labels = tuple(int(k) for k in entry.get("labels", ())) if metric in ("dice", "hd95") else ()
            if metric in ("dice", "hd95") and (not labels or min(labels) < 1):
                raise ValueError(f"{entry['name']}: labels must be a non-empty list of positive integers")
            dest = str(entry["dest"]) if metric == "tre" else None
            methods.append(EvalMethod(str(entry["name"]), metric, labels, dest))
        names = [m.name for m in methods]
        if len(set(names)) != len(names):
            raise ValueError(f"evaluation method names must be unique, got {names}")
        shape = tuple(int(n) for n in raw["expected_shape"])
        if len(shape) not in (3, 4) or shape[-1] != len(shape) - 1:
            raise ValueError(f"expected_shape must be [H, W, 2] or [H, W, D, 3], got {list(shape)}")
        pairs = tuple((str(p["fixed"]), str(p["moving"])) for p in raw["eval_pairs"])
        config = EvalConfig(str(raw["task_name"]), tuple(methods), shape, pairs,
                            bool(raw.get("masked_evaluation", False)),
                            float(raw.get("eval_config_version", CONFIG_VERSION)))
        _ = config.pair_ids
    except (KeyError, TypeError, ValueError) as err:
        detail = f"missing key {err}" if isinstance(err, KeyError) else str(err)
        raise DatasetError(where, f"invalid evaluation config ({detail})") from err
    return config


def read_eval_config(path: str | Path) -> EvalConfig:
    """Read an official ``*_evaluation_config.json``."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DatasetError(path, "file not found") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(path, f"not valid JSON ({err})") from err
    if not isinstance(raw, dict):
        raise DatasetError(path, "top level must be a JSON object")
    return parse_eval_config(raw, where=path)


def write_eval_config(path: str | Path, config: EvalConfig) -> None:
    """Write a config in the official layout (readable by the official ``evaluation.py``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(config.to_json(), indent=4) + "\n")
