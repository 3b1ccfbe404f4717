"""Errors that reach the user as one line naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class RegbenchError(Exception):
    """Base of every error regbench raises on purpose; the CLI prints it without a traceback."""


class DatasetError(RegbenchError):
    """A dataset file is missing, unreadable or inconsistent.

    The message always starts with the offending path, so a user with a thousand files knows which to fix, and
    is one line (a library's multi-line message is joined), so it prints as one.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = " ".join(problem.split())
        super().__init__(f"{path}: {self.problem}")
