"""The smoke-scale study, run once for the tests that read its outputs."""

from __future__ import annotations

import pytest

from regbench.generative.study import run_study


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    """(evaluation table, output folder) of ``run_study("smoke")``."""
    out = tmp_path_factory.mktemp("generative")
    return run_study("smoke", out), out
