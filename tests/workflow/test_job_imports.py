"""Jobs that only read and write tables, images and fields start without torch: importing it costs a second or
two per job, and a smoke run has dozens of such jobs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parents[2] / "workflow" / "scripts"
TABLE_JOBS = ["evaluate.py", "leaderboard.py", "overall_leaderboard.py", "robustness_leaderboard.py", "plots.py",
              "report.py", "make_task.py"]


def _imports(script: Path) -> str:
    """The script's top-level import statements, as source."""
    tree = ast.parse(script.read_text())
    return "\n".join(ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)))


@pytest.mark.parametrize("script", TABLE_JOBS)
def test_table_jobs_import_no_torch(script):
    code = _imports(SCRIPTS / script) + "\nimport sys\nassert 'torch' not in sys.modules, 'torch was imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_check_catches_a_torch_import(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("from regbench.method import Method\n")
    code = _imports(script) + "\nimport sys\nassert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode != 0
