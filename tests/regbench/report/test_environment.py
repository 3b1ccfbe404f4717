"""The environment section: every tool benchmarked, and the commit regbench runs from (or "unknown")."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from regbench.report.environment import UNKNOWN, environment, regbench_commit

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A git repository holding a committed package folder."""
    package = tmp_path / "regbench"
    package.mkdir()
    (package / "__init__.py").write_text('"""A package."""\n')
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "regbench/__init__.py")
    _git(tmp_path, "commit", "-q", "-m", "first")
    return package


def test_environment_names_the_benchmarked_tools_and_the_commit():
    info = environment()
    assert {"regbench commit", "regbench", "numpy", "scipy", "torch", "antspyx", "itk-elastix",
            "snakemake"} <= set(info)
    assert info["antspyx"] != "not installed" and info["itk-elastix"] != "not installed"


@needs_git
def test_commit_of_a_checkout_and_whether_it_was_modified(checkout):
    head = _git(checkout, "rev-parse", "HEAD")
    assert regbench_commit(checkout) == head
    (checkout / "__init__.py").write_text('"""A changed package."""\n')
    assert regbench_commit(checkout) == f"{head} (modified)"


@needs_git
def test_commit_is_unknown_outside_a_checkout_or_where_git_does_not_track_the_package(tmp_path_factory, checkout):
    assert regbench_commit(tmp_path_factory.mktemp("plain")) == UNKNOWN
    untracked = checkout.parent / "installed" / "regbench"  # e.g. a copy in an ignored site-packages
    untracked.mkdir(parents=True)
    (untracked / "__init__.py").write_text("")
    assert regbench_commit(untracked) == UNKNOWN
