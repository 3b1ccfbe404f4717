"""metrics/eval_config.py: the official evaluation config, read, written and derived from a dataset."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from regbench.errors import DatasetError
from regbench.metrics.eval_config import (
    EvalMethod, config_for_task, keypoint_folder, parse_eval_config, read_eval_config, write_eval_config,
)
from regbench.pair import CaseId, PairId

# The head of the official OASIS_VAL_evaluation_config.json (MDL-UzL/L2R), labels shortened.
OFFICIAL = """{
    "task_name": "OASIS",
    "evaluation_methods": [
        {"name": "LogJacDetStd", "metric": "sdlogj"},
        {"name": "DSC", "metric": "dice", "labels": [1, 2, 3]},
        {"name": "HD95", "metric": "hd95", "labels": [1, 2, 3]}
    ],
    "expected_shape": [160, 224, 192, 3],
    "eval_pairs": [
        {"fixed": "./imagesTr/OASIS_0395_0000.nii.gz", "moving": "./imagesTr/OASIS_0396_0000.nii.gz"}
    ],
    "eval_config_version": 0.2
}"""


def test_reads_an_official_config(tmp_path):
    path = tmp_path / "OASIS_VAL_evaluation_config.json"
    path.write_text(OFFICIAL)
    config = read_eval_config(path)
    assert [m.name for m in config.methods] == ["LogJacDetStd", "DSC", "HD95"]
    assert config.methods[1] == EvalMethod("DSC", "dice", (1, 2, 3))
    assert config.expected_shape == (160, 224, 192, 3) and config.spatial_shape == (160, 224, 192)
    assert config.pair_ids == [PairId(CaseId(395, 0), CaseId(396, 0))]
    assert config.masked is False  # absent key: unmasked, as evaluation.py defaults


def test_write_then_read_round_trips(tmp_path):
    config = parse_eval_config(json.loads(OFFICIAL))
    write_eval_config(tmp_path / "c.json", config)
    assert read_eval_config(tmp_path / "c.json") == config
    written = json.loads((tmp_path / "c.json").read_text())
    assert set(written) == {"task_name", "evaluation_methods", "expected_shape", "eval_pairs",
                            "eval_config_version", "masked_evaluation"}
    assert written["evaluation_methods"][0] == {"name": "LogJacDetStd", "metric": "sdlogj"}


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c.pop("eval_pairs"), "missing key 'eval_pairs'"),
    (lambda c: c["evaluation_methods"].append({"name": "DSC", "metric": "dice", "labels": [1]}), "unique"),
    (lambda c: c["evaluation_methods"].append({"name": "X", "metric": "ncc"}), "unknown metric 'ncc'"),
    (lambda c: c.update(expected_shape=[3, 160, 224, 192]), "expected_shape"),
    (lambda c: c["evaluation_methods"][1].update(labels=[0, 1]), "positive"),
    (lambda c: c["eval_pairs"][0].update(fixed="./imagesTr/scan.nii.gz"), "not a Learn2Reg file name"),
])
def test_invalid_configs_are_one_line_errors(tmp_path, edit, message):
    raw = json.loads(OFFICIAL)
    edit(raw)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match=message) as info:
        read_eval_config(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_unreadable_config(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        read_eval_config(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_eval_config(tmp_path / "x.json")


def test_keypoint_folder_follows_the_official_modality_rule():
    def pair(fixed_mod, moving_mod):
        return PairId(CaseId(1, fixed_mod), CaseId(1, moving_mod))

    assert keypoint_folder("keypoints", pair(0, 1)) == "keypoints"
    assert keypoint_folder("keypoints", pair(0, 0)) == "keypoints"
    # ThoraxCBCT: fixed CBCT 0001, moving FBCT 0000 -> "keypoints" + "0000" + "0001" (as evaluation.py does)
    assert keypoint_folder("keypoints", pair(1, 0)) == "keypoints00000001"
    assert keypoint_folder("landmarks", pair(2, 0)) == "landmarks00000002"


def test_config_for_a_task_follows_its_files(make_dataset):
    task = make_dataset(np.random.default_rng(3), n_labels=3, n_keypoints=5, masks=True)
    config = config_for_task(task, "val")
    assert [(m.name, m.metric) for m in config.methods] == [
        ("LogJacDetStd", "sdlogj"), ("DSC", "dice"), ("HD95", "hd95"), ("TRE_kp", "tre")]
    assert config.methods[1].labels == (1, 2, 3)
    assert config.masked is True
    assert config.expected_shape == (*task.shape, 3)
    assert config.pairs[0] == ("./imagesTr/Toy_0001_0000.nii.gz", "./imagesTr/Toy_0001_0001.nii.gz")
    shutil.copytree(task.root / "keypointsTr", task.root / "landmarksTr")
    assert [m.name for m in config_for_task(task, "val").methods][-2:] == ["TRE_lm", "TRE_kp"]


def test_config_for_a_task_without_labels_masks_or_keypoints(make_dataset):
    config = config_for_task(make_dataset(np.random.default_rng(4), n_labels=0), "val")
    assert [m.name for m in config.methods] == ["LogJacDetStd"]
    assert config.masked is False
    with pytest.raises(DatasetError, match="no registration_test pairs"):
        config_for_task(make_dataset(np.random.default_rng(4), n_labels=0), "test")
