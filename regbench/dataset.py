"""The Learn2Reg dataset folder: ``<Task>_dataset.json`` plus ``imagesTr/ labelsTr/ masksTr/ keypointsTr/``.

Follows the official files to the letter (keys as in the released ``ThoraxCBCT_dataset.json``; companion files
found by replacing ``images`` in an image path, as ``evaluation.py`` does), so a folder downloaded from
Learn2Reg loads unchanged. 2D tasks extend it the obvious way: ``tensorImageSize {"0": "2D"}``, shapes [H, W].
Synthetic tasks add ``groundtruth/`` with the true displacement of every registration pair.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from regbench import io
from regbench.displacement import Displacement
from regbench.errors import DatasetError
from regbench.image import Image
from regbench.pair import Case, CaseId, Pair, PairId

Split = Literal["val", "test"]
REQUIRED_KEYS = ("name", "tensorImageSize", "tensorImageShape", "modality", "training")
GROUNDTRUTH_DIR = "groundtruth"
SYNTHETIC_RELEASE = "regbench synthetic 1.0"  # the json's ``release`` of every dataset regbench generates


def find_dataset_json(root: str | Path) -> Path:
    """The one ``*_dataset.json`` in ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, "dataset folder not found")
    found = sorted(root.glob("*_dataset.json"))
    if len(found) != 1:
        raise DatasetError(root, f"expected exactly one *_dataset.json, found {len(found)}")
    return found[0]


def _companion(image_path: str, kind: Literal["labels", "masks", "keypoints"]) -> str:
    """The path of a case's label map, mask or keypoints, derived from its image path as the official code does."""
    path = image_path.replace("images", kind, 1)
    return path.replace(".nii.gz", ".csv") if kind == "keypoints" else path


@dataclass(frozen=True)
class Task:
    """A Learn2Reg dataset on disk: the description json and lazy access to its cases and pairs."""

    root: Path
    description: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.description["name"])

    @property
    def ndim(self) -> int:
        return 2 if _first(self.description["tensorImageSize"]) == "2D" else 3

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in _first(self.description["tensorImageShape"]))

    @property
    def labels(self) -> dict[int, str]:
        """Foreground labels scored by Dice and HD95 (background 0 excluded)."""
        raw = self.description.get("labels") or {}
        flat: dict[str, Any] = {}
        for key, value in raw.items():
            flat.update(value if isinstance(value, Mapping) else {key: value})
        return {int(k): str(v) for k, v in sorted(flat.items(), key=lambda kv: int(kv[0])) if int(k) != 0}

    def modality_name(self, case: CaseId) -> str | None:
        """The json's name for a case's modality index (``modality: {"0": "MR", "1": "CT"}``), if it has one."""
        name = (self.description.get("modality") or {}).get(str(case.modality))
        return None if name is None else str(name)

    def pair_ids(self, split: Split) -> list[PairId]:
        return [PairId(CaseId.from_path(p["fixed"]), CaseId.from_path(p["moving"])) for p in self._pairs(split)]

    def _pairs(self, split: Split) -> list[Mapping[str, str]]:
        """The json's pairs of a split: ``registration_val``/``registration_test``, or LUMIR's ``validation``
        (LUMIR's json has no ``registration_val``; its test pairs are not published)."""
        if split not in ("val", "test"):
            raise ValueError(f"Task.pair_ids(): split must be 'val' or 'test', got {split!r}")
        return list(self.description.get(_pairs_key(self.description, split)) or [])

    @cached_property
    def _image_paths(self) -> dict[CaseId, str]:
        paths: dict[CaseId, str] = {}
        for entry in [*self.description.get("training", []), *self.description.get("test", [])]:
            image = entry["image"] if isinstance(entry, Mapping) else entry
            paths[CaseId.from_path(image)] = image
        for split in ("val", "test"):
            for pair in self._pairs(split):  # type: ignore[arg-type]
                for image in (pair["fixed"], pair["moving"]):
                    paths.setdefault(CaseId.from_path(image), image)
        return paths

    def training_cases(self, *, exclude_eval: bool = True) -> list[CaseId]:
        """Cases listed under ``training`` (minus those in evaluation pairs, so learning never sees them)."""
        listed = [CaseId.from_path(e["image"] if isinstance(e, Mapping) else e)
                  for e in self.description.get("training", [])]
        if not exclude_eval:
            return listed
        held_out = {c for split in ("val", "test") for p in self.pair_ids(split) for c in (p.fixed, p.moving)}
        return [c for c in listed if c not in held_out]

    def resolve(self, relative: str) -> Path:
        """A dataset-relative path (``./imagesTr/...``) under the folder; it may not leave it.

        The check is lexical (no absolute path, no ``..``), not on the resolved path: a downloaded dataset
        often has ``imagesTr`` as a symlink to storage elsewhere, which is the user's choice, while a json
        entry pointing outside the folder is an error.
        """
        parts = PurePosixPath(relative).parts
        if PurePosixPath(relative).is_absolute() or ".." in parts:
            raise DatasetError(self.root / relative, "path escapes the dataset folder (absolute or with '..')")
        return self.root.absolute() / PurePosixPath(*[p for p in parts if p != "."])

    def image_path(self, case: CaseId) -> Path:
        return self.resolve(self.image_relpath(case))

    def image_relpath(self, case: CaseId) -> str:
        """A case's image path relative to the folder, as the json lists it (``./imagesTr/...``)."""
        if case not in self._image_paths:
            raise DatasetError(self.root, f"case {case} is not listed in the dataset json")
        return self._image_paths[case]

    def load_case(self, case: CaseId, *, with_labels: bool = True) -> Case:
        """Read a case's image and whatever companions exist (labels, mask, keypoints)."""
        relative = self._image_paths.get(case)
        if relative is None:
            raise DatasetError(self.root, f"case {case} is not listed in the dataset json")
        image_path = self.resolve(relative)
        image = io.read_image(image_path, ndim=self.ndim)
        _check_shape(image, image_path, self.shape, "tensorImageShape")
        labels = mask = keypoints = None
        label_path = self.resolve(_companion(relative, "labels"))
        if with_labels and label_path.is_file():
            labels = io.read_labels(label_path, ndim=self.ndim)
            _check_shape(labels, label_path, image.shape, "image")
        mask_path = self.resolve(_companion(relative, "masks"))
        if mask_path.is_file():
            mask = io.read_labels(mask_path, ndim=self.ndim)
            _check_shape(mask, mask_path, image.shape, "image")
        keypoint_path = self.resolve(_companion(relative, "keypoints"))
        if keypoint_path.is_file():
            keypoints = io.read_keypoints(keypoint_path, ndim=self.ndim)
        return Case(case, image, labels, mask, keypoints, self.modality_name(case))

    def load_pair(self, pair: PairId, *, with_labels: bool = True) -> Pair:
        """Load both cases of a pair; keypoint files of unequal length are an error (rows correspond)."""
        fixed = self.load_case(pair.fixed, with_labels=with_labels)
        moving = self.load_case(pair.moving, with_labels=with_labels)
        if fixed.keypoints is not None and moving.keypoints is not None \
                and len(fixed.keypoints) != len(moving.keypoints):
            path = self.resolve(_companion(self._image_paths[pair.moving], "keypoints"))
            raise DatasetError(path, f"{len(moving.keypoints)} keypoints, but the fixed case "
                                     f"{pair.fixed} has {len(fixed.keypoints)}; rows must correspond")
        return Pair(pair, fixed, moving)

    def groundtruth_path(self, pair: PairId) -> Path:
        return self.root / GROUNDTRUTH_DIR / f"{pair.disp_stem}.nii.gz"

    def load_groundtruth(self, pair: PairId) -> Displacement | None:
        """The true displacement of a synthetic pair, or None for real data."""
        path = self.groundtruth_path(pair)
        return io.read_disp(path, spatial_shape=self.shape) if path.is_file() else None


def _pairs_key(description: Mapping[str, Any], split: Split) -> str:
    """The json key holding a split's pairs (LUMIR names its validation pairs ``validation``)."""
    if split == "val" and "registration_val" not in description and "validation" in description:
        return "validation"
    return f"registration_{split}"


def _count_key(pairs_key: str) -> str:
    """The key counting a pair list: ``numRegistration_val`` for ``registration_val``, ``numValidation``..."""
    return "num" + pairs_key[0].upper() + pairs_key[1:]


def _check_shape(image: Image, path: Path, expected: tuple[int, ...], what: str) -> None:
    if image.shape != expected:
        raise DatasetError(path, f"shape {image.shape} does not match the {what} shape {expected}")


def _first(value: Any) -> Any:
    """Official shape and size fields are dicts keyed by "0"; older drafts used bare values."""
    if isinstance(value, Mapping):
        if not value:
            raise ValueError("empty mapping")
        return value.get("0", next(iter(value.values())))
    return value


def read_dataset(root: str | Path) -> Task:
    """Open a Learn2Reg dataset folder, checking the json's keys (files are read lazily)."""
    root = Path(root)
    json_path = find_dataset_json(root)
    try:
        description = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(json_path, f"not valid JSON ({err})") from err
    if not isinstance(description, dict):
        raise DatasetError(json_path, "top level must be a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in description]
    if "registration_val" not in description and "validation" not in description:
        missing.append("registration_val (or LUMIR's validation)")
    if missing:
        raise DatasetError(json_path, f"missing key(s) {', '.join(missing)}")
    task = Task(root, description)
    try:  # everything a task is asked for later, so a malformed json fails here, naming itself
        _ = task.ndim, task.labels, task.pair_ids("val"), task.pair_ids("test")
        _ = [task.modality_name(case) for case in task._image_paths]
        shape = task.shape
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as err:  # OverflowError: int(inf)
        raise DatasetError(json_path, f"malformed entry ({type(err).__name__}: {err})") from err
    if len(shape) != task.ndim or min(shape) < 1:
        raise DatasetError(json_path, f"tensorImageShape {list(shape)} is not {task.ndim} positive sizes")
    for split in ("val", "test"):
        key = _pairs_key(description, split)
        count = description.get(_count_key(key))
        if count is not None and count != len(task.pair_ids(split)):
            raise DatasetError(json_path, f"{_count_key(key)} is {count} but {key} "
                                          f"lists {len(task.pair_ids(split))} pairs")
    for relative in task._image_paths.values():
        task.resolve(relative)
    return task


def validate_dataset(root: str | Path) -> Task:
    """Read every file a dataset lists and check shapes and keypoint counts; raise on the first problem."""
    task = read_dataset(root)
    for case in task._image_paths:
        task.load_case(case)
    for split in ("val", "test"):
        for pair in task.pair_ids(split):
            task.load_pair(pair)
            gt = task.groundtruth_path(pair)
            if gt.is_file():
                io.read_disp(gt, spatial_shape=task.shape)
    return task


def write_dataset(root: str | Path, description: Mapping[str, Any], cases: Mapping[str, Case],
                  groundtruth: Mapping[PairId, Displacement] | None = None) -> None:
    """Write a dataset folder: the json (as ``<name>_dataset.json``), each case at its image path with its
    companions beside it, and optional ground-truth fields. ``cases`` maps relative image paths to cases."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for relative, case in cases.items():
        io.write_image(root / relative, case.image)
        if case.labels is not None:
            io.write_image(root / _companion(relative, "labels"), case.labels)
        if case.mask is not None:
            io.write_image(root / _companion(relative, "masks"), case.mask)
        if case.keypoints is not None:
            io.write_keypoints(root / _companion(relative, "keypoints"), case.keypoints)
    for pair, disp in (groundtruth or {}).items():
        io.write_disp(root / GROUNDTRUTH_DIR / f"{pair.disp_stem}.nii.gz", disp)
    with io.atomic_path(root / f"{description['name']}_dataset.json") as tmp:
        tmp.write_text(json.dumps(description, indent=4) + "\n")


def image_relpath(task_name: str, case: CaseId, *, test: bool = False) -> str:
    """``./imagesTr/{TASK}_{CCCC}_{MMMM}.nii.gz`` (``imagesTs`` for test images)."""
    return f"./images{'Ts' if test else 'Tr'}/{task_name}_{case}.nii.gz"


def describe(name: str, *, ndim: int, shape: Sequence[int], modality: Mapping[int, str],
             labels: Mapping[int, str], training: Sequence[Mapping[str, str]], test: Sequence[Mapping[str, str]],
             registration_val: Sequence[Mapping[str, str]], registration_test: Sequence[Mapping[str, str]],
             pairings: str, description: str = "", extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A dataset json with the official keys, in the official order."""
    provided = ["image"] + (["label"] if labels else [])
    return {
        "name": name,
        "release": SYNTHETIC_RELEASE,
        "description": description,
        "licence": "CC-BY 4.0 (synthetic data generated by regbench)",
        "reference": "",
        "pairings": pairings,
        "provided_data": {"0": provided},
        "registration_direction": {"fixed": 0, "moving": 1},
        "modality": {str(k): v for k, v in modality.items()},
        "img_shift": {"fixed": "", "moving": ""},
        "labels": {"0": {"0": "background", **{str(k): v for k, v in labels.items()}}} if labels else {},
        "tensorImageSize": {"0": f"{ndim}D"},
        "tensorImageShape": {"0": [int(n) for n in shape]},
        "numTraining": len(training),
        "numTest": len(test),
        "training": list(training),
        "test": list(test),
        "numPairedTraining": 0,
        "training_paired_images": [],
        "numPairedTest": 0,
        "test_paired_images": [],
        "numRegistration_val": len(registration_val),
        "registration_val": list(registration_val),
        "numRegistration_test": len(registration_test),
        "registration_test": list(registration_test),
        **(extra or {}),
    }
