"""Property tests of the dataset json reader: whatever a ``*_dataset.json`` holds, ``read_dataset`` either raises
a ``DatasetError`` naming the json or returns a task whose every accessor works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from regbench.dataset import Task, describe, image_relpath, read_dataset
from regbench.errors import DatasetError
from regbench.pair import CaseId

# Every example rewrites the same json under tmp_path, so the function-scoped fixture is safe to share.
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)
VALUES = JSON_VALUES | st.lists(st.integers() | st.floats(), max_size=5)  # shapes, NaN and inf too


def _description() -> dict:
    """A valid json of two subjects and one val pair (``read_dataset`` reads no other file)."""
    images = [image_relpath("Toy", CaseId(case, 0)) for case in (1, 2)]
    return describe("Toy", ndim=3, shape=(4, 5, 6), modality={0: "MR"}, labels={1: "a"},
                    training=[{"image": image} for image in images], test=[],
                    registration_val=[{"fixed": images[0], "moving": images[1]}], registration_test=[],
                    pairings="unpaired")


def _read_or_named(root: Path, text: bytes) -> Task | None:
    """The task, or None after checking the error names the json in one line."""
    path = root / "Toy_dataset.json"
    path.write_bytes(text)
    try:
        return read_dataset(root)
    except DatasetError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err)
        return None


def _use(task: Task) -> None:
    """Everything the rest of regbench asks of a task it was given."""
    _ = task.name, task.ndim, task.shape, task.labels, task.training_cases()
    for split in ("val", "test"):
        for pair in task.pair_ids(split):
            for case in (pair.fixed, pair.moving):
                task.image_path(case)
                task.modality_name(case)


@PROPERTY
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_are_a_dataset_error(tmp_path, data):
    assert _read_or_named(tmp_path, data) is None


@PROPERTY
@given(value=JSON_VALUES)
def test_arbitrary_json_is_a_dataset_error(tmp_path, value):
    task = _read_or_named(tmp_path, json.dumps(value).encode())
    if task is not None:
        _use(task)


@pytest.mark.parametrize("where", ["top", "entry"])
@PROPERTY
@given(changes=st.dictionaries(st.sampled_from(sorted(_description()) + ["validation"]), VALUES, min_size=1,
                               max_size=3),
       entry=st.sampled_from(["training", "registration_val"]), field=st.sampled_from(["image", "fixed", "moving"]),
       value=VALUES)
@example(changes={"tensorImageShape": [float("inf"), 1, 1]}, entry="training", field="image", value=None)
def test_a_valid_json_with_any_value_changed_reads_or_is_named(tmp_path, where, changes, entry, field, value):
    description = _description()
    if where == "top":
        description.update(changes)
    else:
        description[entry][0] = {**description[entry][0], field: value}
    task = _read_or_named(tmp_path, json.dumps(description).encode())
    if task is not None:
        _use(task)
