"""Property tests of the evaluation config reader: whatever a ``*_evaluation_config.json`` holds,
``read_eval_config`` either returns a usable config or raises a ``DatasetError`` naming the file in one line."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from regbench.errors import DatasetError
from regbench.metrics.eval_config import EvalConfig, read_eval_config

# Every example rewrites the same file under tmp_path, so the function-scoped fixture is safe to share.
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)
VALUES = JSON_VALUES | st.lists(st.integers() | st.floats(), max_size=5)  # shapes and labels, NaN and inf too
VALID = {
    "task_name": "Toy",
    "evaluation_methods": [{"name": "LogJacDetStd", "metric": "sdlogj"},
                           {"name": "DSC", "metric": "dice", "labels": [1, 2]},
                           {"name": "TRE_kp", "metric": "tre", "dest": "keypoints"}],
    "expected_shape": [4, 5, 6, 3],
    "eval_pairs": [{"fixed": "./imagesTr/Toy_0001_0000.nii.gz", "moving": "./imagesTr/Toy_0002_0000.nii.gz"}],
    "eval_config_version": 0.2,
    "masked_evaluation": False,
}


def _read_or_named(path: Path, text: bytes) -> EvalConfig | None:
    path.write_bytes(text)
    try:
        config = read_eval_config(path)
    except DatasetError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err)
        return None
    _ = config.pair_ids, config.spatial_shape, config.to_json()
    return config


@PROPERTY
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_are_a_dataset_error(tmp_path, data):
    assert _read_or_named(tmp_path / "c.json", data) is None


@PROPERTY
@given(value=JSON_VALUES)
def test_arbitrary_json_is_a_dataset_error(tmp_path, value):
    _read_or_named(tmp_path / "c.json", json.dumps(value).encode())


@PROPERTY
@given(changes=st.dictionaries(st.sampled_from(sorted(VALID) + ["name"]), VALUES, min_size=1, max_size=2),
       method=st.integers(0, 2), key=st.sampled_from(["name", "metric", "labels", "dest"]), value=VALUES)
@example(changes={"expected_shape": [float("inf")]}, method=1, key="labels", value=[float("inf")])
def test_a_valid_config_with_any_value_changed_reads_or_is_named(tmp_path, changes, method, key, value):
    raw = json.loads(json.dumps(VALID))
    raw["evaluation_methods"][method][key] = value
    _read_or_named(tmp_path / "c.json", json.dumps(raw).encode())
    _read_or_named(tmp_path / "c.json", json.dumps({**VALID, **changes}).encode())
