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

LUMIR's configs (JHU-MedImage-Reg/LUMIR_L2R, LUMIR25_L2R25) are read too: they call the task ``name``,
add the metric ``ndv`` (``{"name": "Non-diffeomorphic Volumes", "metric": "ndv"}``, ``metrics.ndv``), list
Dice and HD95 labels with the background 0 among them, and point ``tre`` at landmark label maps
(``landmarksVal/*.nii.gz``, ``metrics.landmarks``) instead of CSV files.

A task without a config gets the one its files imply (``config_for_task``): SDlogJ always; Dice and HD95
over the labels its json lists, if any; ``TRE_lm`` / ``TRE_kp`` where the json mentions landmarks /
keypoints (``provided_data``, or keys of its ``training`` entries: ThoraxCBCT's ``keypoints01``) or a
fixed image of the split has such a file; masked evaluation where every fixed image has a mask (as the
official configs do for the tasks that ship masks: AbdomenMRCT, LungCT, NLST). A metric listed there
whose files a pair lacks (test labels are not published) is reported as not scored, never dropped.
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

MetricKind = Literal["sdlogj", "dice", "hd95", "tre", "ndv"]
CONFIG_VERSION = 0.2


@dataclass(frozen=True)
class EvalMethod:
    """One entry of ``evaluation_methods``: the name results are stored under, the metric, and its target.

    ``labels`` are the labels Dice/HD95 score (0 only where a config lists it, as LUMIR's do); ``dest`` is the
    folder TRE reads points from (``keypoints`` or ``landmarks``; a suffix is appended for some multi-modal
    pairs, ``keypoint_folder``).
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

    def images(self, pair: PairId) -> tuple[str, str]:
        """The relative (fixed, moving) image paths the config lists for ``pair``: companion files are found
        from these, as the official code finds them (LUMIR's configs list cases its dataset json does not)."""
        for pair_id, images in zip(self.pair_ids, self.pairs):
            if pair_id == pair:
                return images
        raise ValueError(f"EvalConfig.images(): pair {pair.key} is not in the config")

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


def companion_file(task: Task, image: str, folder: str, *, points: bool = False) -> Path:
    """The file beside a case's image (its relative path) in a companion folder, found as the official code
    finds it: ``images`` replaced by ``folder`` (``labels``, ``masks``, ``keypoints01``...), ``.csv`` for
    point files."""
    relative = image.replace("images", folder, 1)
    return task.resolve(relative.replace(".nii.gz", ".csv") if points else relative)


def point_file(task: Task, image: str, folder: str) -> Path | None:
    """A case's points: the Learn2Reg CSV if there is one, else LUMIR's landmark label map (``.nii.gz``)."""
    for path in (companion_file(task, image, folder, points=True), companion_file(task, image, folder)):
        if path.is_file():
            return path
    return None


def keypoint_folder(dest: str, pair: PairId) -> str:
    """The TRE folder of a pair: ``dest``, plus the two modality indices, smaller first (``keypoints01``),
    when the modalities differ and the pair is not the 0000 -> 0001 default.

    This is where the ThoraxCBCT release keeps them (``keypoints01Tr/`` for CBCT time point 1 <- FBCT 0000,
    ``keypoints02Tr/`` for time point 2), and what the copy of evaluation.py in LUMIR's evaluator builds
    (``str(min) + str(max)`` of the integer indices). MDL-UzL/L2R's evaluation.py (2025) concatenates the
    4-digit strings instead, ``keypoints00000001``, a folder no release has, so its TRE of these pairs
    fails; regbench follows the data.
    """
    low, high = sorted((pair.fixed.modality, pair.moving.modality))
    if low == high or (pair.fixed.modality, pair.moving.modality) == (0, 1):
        return dest
    return f"{dest}{low}{high}"


def mentions(task: Task, dest: str) -> bool:
    """Whether the dataset json says its cases have ``dest`` points (``keypoints``, ``landmarks``): an item of
    ``provided_data`` or a key of a ``training`` entry starting with it (ThoraxCBCT: ``keypoints01``)."""
    provided = [str(item) for items in (task.description.get("provided_data") or {}).values() for item in items]
    keys = [str(key) for entry in task.description.get("training") or [] if isinstance(entry, Mapping)
            for key in entry]
    return any(name.startswith(dest) for name in provided + keys)


def config_for_task(task: Task, split: Split) -> EvalConfig:
    """The config a task's files imply (see the module docstring)."""
    pair_ids = task.pair_ids(split)
    if not pair_ids:
        raise DatasetError(task.root, f"the dataset lists no registration_{split} pairs")
    pairs = tuple((_relative(task, p.fixed), _relative(task, p.moving)) for p in pair_ids)
    labels = tuple(sorted(task.labels))
    methods = [EvalMethod("LogJacDetStd", "sdlogj")]
    if labels:
        methods += [EvalMethod("DSC", "dice", labels), EvalMethod("HD95", "hd95", labels)]
    for name, dest in (("TRE_lm", "landmarks"), ("TRE_kp", "keypoints")):
        if mentions(task, dest) or any(point_file(task, fixed, keypoint_folder(dest, p)) is not None
                                       for p, (fixed, _) in zip(pair_ids, pairs)):
            methods.append(EvalMethod(name, "tre", dest=dest))
    masked = all(companion_file(task, fixed, "masks").is_file() for fixed, _ in pairs)
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
            if metric in ("dice", "hd95") and (not labels or min(labels) < 0):
                raise ValueError(f"{entry['name']}: labels must be a non-empty list of non-negative integers")
            dest = str(entry["dest"]) if metric == "tre" else None
            methods.append(EvalMethod(str(entry["name"]), metric, labels, dest))
        names = [m.name for m in methods]
        if len(set(names)) != len(names):
            raise ValueError(f"evaluation method names must be unique, got {names}")
        shape = tuple(int(n) for n in raw["expected_shape"])
        if len(shape) not in (3, 4) or shape[-1] != len(shape) - 1:
            raise ValueError(f"expected_shape must be [H, W, 2] or [H, W, D, 3], got {list(shape)}")
        pairs = tuple((str(p["fixed"]), str(p["moving"])) for p in raw["eval_pairs"])
        name = raw["name"] if "name" in raw and "task_name" not in raw else raw["task_name"]  # LUMIR: "name"
        config = EvalConfig(str(name), tuple(methods), shape, pairs,
                            bool(raw.get("masked_evaluation", False)),
                            float(raw.get("eval_config_version", CONFIG_VERSION)))
        _ = config.pair_ids
    except (KeyError, TypeError, ValueError, OverflowError) as err:  # OverflowError: int() of an infinity
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
