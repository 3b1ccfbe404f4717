"""metrics/eval_config.py: the official evaluation config, read, written and derived from a dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from regbench.errors import DatasetError
from regbench.metrics.eval_config import (
    EvalMethod, config_for_task, keypoint_folder, parse_eval_config, read_eval_config, write_eval_config,
)
from regbench.pair import CaseId, PairId

DATA = Path(__file__).parents[1] / "data"

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
    (lambda c: c["evaluation_methods"][1].update(labels=[-1, 1]), "non-negative"),
    (lambda c: c["evaluation_methods"][1].update(labels=[]), "non-empty"),
    (lambda c: c.pop("task_name"), "missing key 'task_name'"),
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


def test_keypoint_folder_is_where_the_releases_keep_the_points():
    def pair(fixed_mod, moving_mod):
        return PairId(CaseId(1, fixed_mod), CaseId(1, moving_mod))

    assert keypoint_folder("keypoints", pair(0, 1)) == "keypoints"
    assert keypoint_folder("keypoints", pair(0, 0)) == "keypoints"
    # ThoraxCBCT: fixed CBCT time point N <- moving FBCT 0000 reads keypoints0N (the released folders), not
    # MDL-UzL's "keypoints" + "0000" + "000N", which no release has.
    assert keypoint_folder("keypoints", pair(1, 0)) == "keypoints01"
    assert keypoint_folder("keypoints", pair(2, 0)) == "keypoints02"
    assert keypoint_folder("landmarks", pair(0, 2)) == "landmarks02"


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


# The head of LUMIR 2025's LUMIR25_VAL_LUMIR24_Segmentation_evaluation_config.json (JHU-MedImage-Reg/LUMIR25_L2R25),
# labels shortened: "name" instead of "task_name", the metric "ndv", and the background 0 among the labels.
LUMIR = """{
    "name": "LUMIR",
    "evaluation_methods": [
        {"name": "Non-diffeomorphic Volumes", "metric": "ndv"},
        {"name": "DSC", "metric": "dice", "labels": [0, 4, 11, 23, 30]},
        {"name": "HD95", "metric": "hd95", "labels": [0, 4, 11, 23, 30]}
    ],
    "expected_shape": [160, 224, 192, 3],
    "eval_pairs": [
        {"fixed": "./imagesVal/LUMIRMRI_3455_0000.nii.gz", "moving": "./imagesVal/LUMIRMRI_3454_0000.nii.gz"}
    ],
    "eval_config_version": 0.0,
    "masked_evaluation": false
}"""


def test_reads_a_lumir_config(tmp_path):
    path = tmp_path / "LUMIR25_VAL_LUMIR24_Segmentation_evaluation_config.json"
    path.write_text(LUMIR)
    config = read_eval_config(path)
    assert config.task_name == "LUMIR"
    assert config.methods[0] == EvalMethod("Non-diffeomorphic Volumes", "ndv")
    assert config.methods[1] == EvalMethod("DSC", "dice", (0, 4, 11, 23, 30))
    assert config.images(PairId(CaseId(3455, 0), CaseId(3454, 0))) == (
        "./imagesVal/LUMIRMRI_3455_0000.nii.gz", "./imagesVal/LUMIRMRI_3454_0000.nii.gz")
    write_eval_config(tmp_path / "c.json", config)
    assert read_eval_config(tmp_path / "c.json") == config
    assert json.loads((tmp_path / "c.json").read_text())["evaluation_methods"][0] == {
        "name": "Non-diffeomorphic Volumes", "metric": "ndv"}


def test_config_for_a_task_lists_keypoints_its_json_mentions(tmp_path):
    # ThoraxCBCT's json lists keypoints01/keypoints02 (provided_data, training entries) but the validation
    # cases ship none: TRE_kp stays in the config, and the evaluation reports it as not scored.
    from regbench.dataset import read_dataset

    shutil.copy(DATA / "ThoraxCBCT_dataset.json", tmp_path)
    config = config_for_task(read_dataset(tmp_path), "val")
    assert [m.name for m in config.methods] == ["LogJacDetStd", "TRE_kp"]
    assert config.methods[1].dest == "keypoints" and config.masked is False


def test_config_for_a_task_without_labels_masks_or_keypoints(make_dataset):
    config = config_for_task(make_dataset(np.random.default_rng(4), n_labels=0), "val")
    assert [m.name for m in config.methods] == ["LogJacDetStd"]
    assert config.masked is False
    with pytest.raises(DatasetError, match="no registration_test pairs"):
        config_for_task(make_dataset(np.random.default_rng(4), n_labels=0), "test")
