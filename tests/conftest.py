"""Shared fixtures: synthetic tasks generated once per session, at the scale the tests need."""

from __future__ import annotations

from pathlib import Path

import pytest

from regbench.dataset import Task, read_dataset
from regbench.tasks.generate import make_task


@pytest.fixture(scope="session")
def generated_task(tmp_path_factory: pytest.TempPathFactory):
    """``generated_task(name, scale="default")`` -> Task, written once per session and reused."""
    cache: dict[tuple[str, str], Task] = {}

    def get(name: str, scale: str = "default") -> Task:
        if (name, scale) not in cache:
            root = tmp_path_factory.mktemp(f"{name}_{scale}") / name
            cache[name, scale] = read_dataset(make_task(name, root, scale=scale))
        return cache[name, scale]

    return get


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(20261124)


def data_dir() -> Path:
    return Path(__file__).parent / "data"
