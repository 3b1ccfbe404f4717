"""Property tests of the task YAML reader: whatever a task YAML holds, ``load_spec`` either returns a usable spec
or raises a ``DatasetError`` naming the YAML in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regbench.errors import DatasetError
from regbench.tasks.spec import TaskSpec, load_spec

# Every example rewrites the same file under tmp_path, so the function-scoped fixture is safe to share.
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6) | st.integers(), inner,
                                                                max_size=4),
    max_leaves=12)
BUILT_IN = yaml.safe_load((Path(__file__).parents[2] / "tasks" / "cardiac_mr.yaml").read_text())


def _load_or_named(path: Path, text: bytes) -> TaskSpec | None:
    path.write_bytes(text)
    try:
        spec = load_spec(path)
    except DatasetError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err)
        return None
    _ = spec.name, spec.ndim, spec.modalities, spec.labels, [spec.scale(name) for name in spec.scales]
    return spec


@PROPERTY
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_are_a_dataset_error(tmp_path, data):
    _load_or_named(tmp_path / "task.yaml", data)


@PROPERTY
@given(changes=st.dictionaries(st.sampled_from(sorted(BUILT_IN)), YAML_VALUES, min_size=1, max_size=3),
       scale=st.sampled_from(sorted(BUILT_IN["scales"])), key=st.sampled_from(["shape", "train", "val_pairs"]),
       value=YAML_VALUES)
def test_a_valid_yaml_with_any_value_changed_loads_or_is_named(tmp_path, changes, scale, key, value):
    scales = {**BUILT_IN["scales"], scale: {**BUILT_IN["scales"][scale], key: value}}
    _load_or_named(tmp_path / "task.yaml", yaml.safe_dump({**BUILT_IN, "scales": scales}).encode())
    _load_or_named(tmp_path / "task.yaml", yaml.safe_dump({**BUILT_IN, **changes}).encode())


@pytest.mark.parametrize("source", ["{a: [1, 2]}", "[1, 2]", "'" + "x" * 5000 + "'"],
                         ids=["mapping", "list", "name-too-long"])
def test_a_source_that_is_no_usable_path_is_named(tmp_path, source):
    # found by the property above: a mapping as source became a path too long for the file system (OSError)
    with pytest.raises(DatasetError, match="source"):
        load_spec(_written(tmp_path / "task.yaml", f"source: {source}\n"))


def _written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_source_that_is_no_learn2reg_folder_is_named_by_the_yaml(tmp_path):
    # Found by the property test above: source '' is the YAML's own folder, which holds no dataset json.
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump({**BUILT_IN, "source": ""}))
    with pytest.raises(DatasetError) as raised:
        load_spec(path)
    assert str(raised.value).startswith(f"{path}: source '' is not a Learn2Reg folder")
