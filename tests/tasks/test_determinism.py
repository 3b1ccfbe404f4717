"""Same seed, same bytes; another seed, other bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from regbench.tasks.generate import make_task
from regbench.tasks.spec import list_tasks, load_spec

SYNTHETIC = [name for name in list_tasks() if load_spec(name).synthetic]


def _contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", SYNTHETIC)
def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path, name):
    first = _contents(make_task(name, tmp_path / "a", scale="smoke", seed=7))
    again = _contents(make_task(name, tmp_path / "b", scale="smoke", seed=7))
    other = _contents(make_task(name, tmp_path / "c", scale="smoke", seed=8))
    assert first.keys() == again.keys()
    assert all(first[k] == again[k] for k in first), [k for k in first if first[k] != again[k]]
    images = [k for k in first if k.startswith("images")]
    assert any(first[k] != other[k] for k in images)
