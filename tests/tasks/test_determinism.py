"""Same seed, same bytes; another seed, other bytes."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from regbench.tasks.generate import make_task
from regbench.tasks.spec import list_tasks, load_spec

SYNTHETIC = [name for name in list_tasks() if load_spec(name).synthetic]


def _contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", SYNTHETIC)
def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path, name, request):
    # A generator that takes workflow inputs (cardiac_cohort: its model) gets them from the smoke study (training
    # repeats for a seed: tests/regbench/generative/test_cheart.py).
    wanted = getattr(importlib.import_module(f"regbench.tasks.{load_spec(name).generator}"), "WORKFLOW_INPUTS", {})
    inputs = None
    if wanted:
        _, out = request.getfixturevalue("smoke_study")
        inputs = {key: out / Path(path).name for key, path in wanted.items()}
    first = _contents(make_task(name, tmp_path / "a", scale="smoke", seed=7, inputs=inputs))
    again = _contents(make_task(name, tmp_path / "b", scale="smoke", seed=7, inputs=inputs))
    other = _contents(make_task(name, tmp_path / "c", scale="smoke", seed=8, inputs=inputs))
    assert first.keys() == again.keys()
    assert all(first[k] == again[k] for k in first), [k for k in first if first[k] != again[k]]
    images = [k for k in first if k.startswith("images")]
    assert any(first[k] != other[k] for k in images)
