"""Task definitions: one YAML per task under ``tasks/``, read into a ``TaskSpec``.

A spec says where the data comes from (``source: synthetic`` with a generator, or the path of a Learn2Reg
folder), what it shows (anatomy, modalities, dimensionality, labels, keypoints) and, for synthetic tasks,
how large it is at each scale: ``smoke`` (tests), ``default`` (CPU-sized) and ``paper`` (Learn2Reg-like).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

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

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"

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
    """Load a built-in task by name, or any task YAML by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = _spec_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise DatasetError(path, f"no such task; built-in tasks are {', '.join(list_tasks())}")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise DatasetError(path, f"not a readable task YAML ({err})") from err
    try:
        scales = {name: Scale(tuple(s["shape"]), int(s["train"]), int(s["val_pairs"]), int(s["test_pairs"]))
                  for name, s in (raw.get("scales") or {}).items()}
        return TaskSpec(
            name=raw["name"], description=raw.get("description", ""), anatomy=raw["anatomy"],
            ndim=int(raw["dimensionality"]), modalities={int(k): v for k, v in raw["modalities"].items()},
            labels={int(k): v for k, v in (raw.get("labels") or {}).items()}, keypoints=bool(raw.get("keypoints")),
            source=raw["source"], generator=raw.get("generator"), seed=int(raw.get("seed", 0)), scales=scales,
            settings=dict(raw.get("settings") or {}), path=path,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise DatasetError(path, f"invalid task definition ({type(err).__name__}: {err})") from err
