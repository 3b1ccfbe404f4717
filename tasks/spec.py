"""Task definitions, read into a ``TaskSpec`` from one of three task sources:

- a built-in name (``brain_mr``): the YAML shipped under ``tasks/``;
- a task YAML by path: ``source: synthetic`` with a generator, or ``source:`` the path of a Learn2Reg folder
  (relative to the YAML);
- the path of a Learn2Reg folder itself (a downloaded OASIS, NLST, ThoraxCBCT, LUMIR...), described by its
  ``*_dataset.json``.

A spec says where the data comes from, what it shows (anatomy, modalities, dimensionality, labels, keypoints)
and, for synthetic tasks, how large it is at each scale: ``smoke`` (tests), ``default`` (CPU-sized) and
``paper`` (Learn2Reg-like). A real task's name is its json's ``name``, in every output path and table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from regbench.dataset import read_dataset
from regbench.errors import DatasetError

SCALES = ("smoke", "default", "paper")
SettingsT = TypeVar("SettingsT")


@dataclass(frozen=True)
class Scale:
    """Grid and cohort size of a synthetic task at one scale."""

    shape: tuple[int, ...]
    train: int
    val_pairs: int
    test_pairs: int


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    anatomy: str
    ndim: int
    modalities: dict[int, str]
    labels: dict[int, str]
    keypoints: bool
    source: str
    generator: str | None = None
    seed: int = 0
    scales: dict[str, Scale] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    shape: tuple[int, ...] | None = None  # a real task's image shape (synthetic ones: per scale)
    pair_counts: dict[str, int] = field(default_factory=dict)  # a real task's pairs per split ("val", "test")

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"

    @property
    def multimodal(self) -> bool:
        """Whether the task's images come from more than one modality (by name: inspiration and expiration CT
        are one), so that its pairs' intensities need not correspond."""
        return len(set(self.modalities.values())) > 1

    def scale(self, name: str) -> Scale:
        if name not in self.scales:
            raise ValueError(f"task {self.name!r}: unknown scale {name!r}; choose one of {sorted(self.scales)}")
        return self.scales[name]

    def settings_as(self, cls: type[SettingsT]) -> SettingsT:
        """The generator ``settings`` as the dataclass ``cls``; a missing or unknown key names the YAML."""
        try:
            return cls(**self.settings)
        except TypeError as err:
            raise DatasetError(self.path or self.name, f"settings do not fit {cls.__name__} ({err})") from err


def _spec_dir() -> Path:
    return Path(str(resources.files("regbench.tasks")))


def list_tasks() -> list[str]:
    """Names of the built-in tasks (the YAML files shipped in this package)."""
    return sorted(p.stem for p in _spec_dir().glob("*.yaml"))


def load_spec(name_or_path: str | Path) -> TaskSpec:
    """Load a built-in task by name, a task YAML by path, or a Learn2Reg folder by path."""
    path = Path(name_or_path)
    if path.is_dir() and (os.sep in str(name_or_path) or str(name_or_path) not in list_tasks()):
        return folder_spec(path)
    if not path.suffix:
        path = _spec_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise DatasetError(path, f"no such task; built-in tasks are {', '.join(list_tasks())}")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise DatasetError(path, f"not a readable task YAML ({err})") from err
    if not isinstance(raw, dict):
        raise DatasetError(path, "not a task definition (expected a YAML mapping)")
    if raw.get("source", "synthetic") != "synthetic":
        return _yaml_folder_spec(path, raw)
    try:
        scales = {name: Scale(tuple(int(n) for n in s["shape"]), int(s["train"]), int(s["val_pairs"]),
                              int(s["test_pairs"]))
                  for name, s in (raw.get("scales") or {}).items()}
        spec = TaskSpec(
            name=raw["name"], description=raw.get("description", ""), anatomy=raw["anatomy"],
            ndim=int(raw["dimensionality"]), modalities={int(k): v for k, v in raw["modalities"].items()},
            labels={int(k): v for k, v in (raw.get("labels") or {}).items()}, keypoints=bool(raw.get("keypoints")),
            source=raw["source"], generator=raw.get("generator"), seed=int(raw.get("seed", 0)), scales=scales,
            settings=dict(raw.get("settings") or {}), path=path,
        )
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as err:  # a value of the wrong kind
        raise DatasetError(path, f"invalid task definition ({type(err).__name__}: {err})") from err
    _check_synthetic(spec, path)
    return spec


def _check_synthetic(spec: TaskSpec, path: Path) -> None:
    """Refuse what would fail only later: a name that cannot be a folder name, grids that do not fit the
    dimensionality."""
    if not isinstance(spec.name, str) or not spec.name.strip() or "/" in spec.name:
        raise DatasetError(path, f"invalid task definition (name {spec.name!r} is not a folder name)")
    if spec.ndim not in (2, 3):
        raise DatasetError(path, f"invalid task definition (dimensionality {spec.ndim}; expected 2 or 3)")
    for name, scale in spec.scales.items():
        if len(scale.shape) != spec.ndim or min(scale.shape) < 1:
            raise DatasetError(path, f"invalid task definition (scale {name}: shape {list(scale.shape)} is not "
                                     f"{spec.ndim} positive sizes)")


def folder_spec(folder: str | Path, *, path: Path | None = None, description: str | None = None,
                anatomy: str | None = None) -> TaskSpec:
    """The spec of a Learn2Reg folder, read from its ``*_dataset.json`` (only the json is read here)."""
    task = read_dataset(folder)
    provided = [str(item) for items in (task.description.get("provided_data") or {}).values() for item in items]
    return TaskSpec(
        name=task.name, description=description or str(task.description.get("description") or ""),
        anatomy=anatomy or "", ndim=task.ndim,
        modalities={int(k): str(v) for k, v in (task.description.get("modality") or {}).items()},
        labels=task.labels, keypoints=any(item.startswith(("keypoints", "landmarks")) for item in provided),
        source=str(Path(folder).absolute()), path=path, shape=task.shape,
        pair_counts={split: len(task.pair_ids(split)) for split in ("val", "test")},
    )


def _yaml_folder_spec(path: Path, raw: dict[str, Any]) -> TaskSpec:
    """A task YAML whose ``source`` is a Learn2Reg folder (relative to the YAML); the json gives the name."""
    if not isinstance(raw["source"], str):
        raise DatasetError(path, f"source must be 'synthetic' or the path of a Learn2Reg folder, got {raw['source']!r}")
    folder = path.parent / raw["source"]
    try:
        is_folder = folder.is_dir()
    except OSError as err:  # e.g. a name too long for the file system
        raise DatasetError(path, f"source {raw['source']!r} is not a usable path ({err.strerror})") from err
    if not is_folder:
        raise DatasetError(path, f"source {raw['source']!r} is not a folder (looked for {folder})")
    try:
        spec = folder_spec(folder, path=path, description=raw.get("description"), anatomy=raw.get("anatomy"))
    except DatasetError as err:  # named by the folder: say which YAML pointed there
        raise DatasetError(path, f"source {raw['source']!r} is not a Learn2Reg folder ({err})") from err
    if raw.get("name") not in (None, spec.name):
        raise DatasetError(path, f"name {raw['name']!r} differs from the dataset json's name {spec.name!r}; "
                                 "a real task is named by its json")
    return spec


def task_specs(entries: list[str]) -> dict[str, TaskSpec]:
    """The specs of a config's ``tasks:`` entries, keyed by task name; two entries of one name are an error
    (their outputs would overwrite each other)."""
    specs: dict[str, TaskSpec] = {}
    sources: dict[str, str] = {}
    for entry in entries:
        spec = load_spec(entry)
        if spec.name in specs:
            raise DatasetError(entry, f"task name {spec.name!r} is already taken by tasks entry {sources[spec.name]!r}")
        specs[spec.name], sources[spec.name] = spec, entry
    return specs
