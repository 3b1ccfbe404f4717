"""Task specs: generator settings read into a dataclass, with errors that name the YAML."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from regbench.errors import DatasetError
from regbench.tasks.spec import TaskSpec


@dataclass(frozen=True)
class _Settings:
    amplitude: float
    noise: float


def _spec(settings: dict) -> TaskSpec:
    return TaskSpec(name="toy", description="", anatomy="none", ndim=2, modalities={0: "MR"}, labels={},
                    keypoints=False, source="synthetic", settings=settings, path=Path("tasks/toy.yaml"))


def test_settings_as_builds_the_dataclass():
    assert _spec({"amplitude": 2.0, "noise": 0.1}).settings_as(_Settings) == _Settings(2.0, 0.1)


@pytest.mark.parametrize(("settings", "named"), [({"amplitude": 2.0}, "noise"),
                                                 ({"amplitude": 2.0, "noise": 0.1, "nosie": 0.1}, "nosie")])
def test_missing_or_unknown_settings_name_the_yaml_and_the_key(settings, named):
    with pytest.raises(DatasetError, match=rf"tasks/toy\.yaml: settings do not fit _Settings .*{named}"):
        _spec(settings).settings_as(_Settings)
