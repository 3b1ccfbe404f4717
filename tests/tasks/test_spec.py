"""Task specs: generator settings read into a dataclass, with errors that name the YAML; real Learn2Reg folders
as task sources, by path or through a YAML."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from regbench.errors import DatasetError
from regbench.tasks.spec import TaskSpec, load_spec, task_specs


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


@pytest.fixture(scope="module")
def learn2reg_folder(tmp_path_factory) -> Path:
    """A Learn2Reg folder outside the project, as a user's download would be (a smoke-sized brain_mr)."""
    from regbench.tasks.generate import make_task

    return make_task("brain_mr", tmp_path_factory.mktemp("downloads") / "OASIS_like", scale="smoke")


def test_a_folder_is_a_task_named_by_its_json(learn2reg_folder):
    spec = load_spec(str(learn2reg_folder))
    assert spec.name == "brain_mr" and not spec.synthetic and spec.source == str(learn2reg_folder.absolute())
    assert spec.ndim == 3 and spec.shape == (32, 38, 32) and spec.labels == load_spec("brain_mr").labels
    assert spec.pair_counts == {"val": 1, "test": 1}


def test_a_yaml_source_is_relative_to_the_yaml(learn2reg_folder, tmp_path):
    yaml_path = tmp_path / "mine" / "oasis.yaml"
    yaml_path.parent.mkdir()
    relative = os.path.relpath(learn2reg_folder, yaml_path.parent)
    yaml_path.write_text(f"source: {relative}\nanatomy: brain\ndescription: my download\n")
    spec = load_spec(yaml_path)
    assert (spec.name, spec.anatomy, spec.description) == ("brain_mr", "brain", "my download")
    assert Path(spec.source).samefile(learn2reg_folder) and spec.path == yaml_path


def test_a_yaml_naming_a_real_task_otherwise_than_its_json_is_refused(learn2reg_folder, tmp_path):
    yaml_path = tmp_path / "oasis.yaml"
    yaml_path.write_text(f"name: OASIS\nsource: {learn2reg_folder}\n")
    with pytest.raises(DatasetError, match=r"oasis\.yaml: name 'OASIS' differs from the dataset json's name"):
        load_spec(yaml_path)


def test_a_yaml_source_that_is_not_a_folder_is_named(tmp_path):
    yaml_path = tmp_path / "oasis.yaml"
    yaml_path.write_text("source: ../nowhere\n")
    with pytest.raises(DatasetError, match=r"oasis\.yaml: source '../nowhere' is not a folder"):
        load_spec(yaml_path)


def test_two_task_entries_of_one_name_are_refused(learn2reg_folder):
    with pytest.raises(DatasetError, match="task name 'brain_mr' is already taken by tasks entry 'brain_mr'"):
        task_specs(["brain_mr", str(learn2reg_folder)])


def test_a_built_in_name_wins_over_a_folder_of_that_name_in_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "brain_mr").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_spec("brain_mr").synthetic


def test_a_task_is_multimodal_when_its_modalities_have_more_than_one_name():
    # thorax_ct's inspiration and expiration scans have two indices but are both CT
    assert load_spec("abdomen_mrct").multimodal
    assert not load_spec("thorax_ct").multimodal and not load_spec("brain_mr").multimodal
