"""The command line: listing, generating, validating, and one-line errors without a traceback."""

from __future__ import annotations

import subprocess
import sys

from regbench.cli import main


def test_validate_reports_a_bad_folder_in_one_line(tmp_path):
    missing = tmp_path / "nowhere"
    result = subprocess.run([sys.executable, "-m", "regbench.cli", "validate", str(missing)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == f"regbench: error: {missing}: dataset folder not found"
    assert "Traceback" not in result.stderr


def test_make_task_of_unknown_task_is_one_line(tmp_path, capsys):
    assert main(["make-task", "no_such_task", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such task" in err[0]
    assert not (tmp_path / "x").exists()


def test_tasks_lists_every_builtin_task(capsys):
    from regbench.tasks.spec import list_tasks

    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in list_tasks())


def test_methods_lists_every_registered_method_with_its_capabilities(capsys):
    from regbench.registry import list_methods

    assert main(["methods"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert sorted(rows) == list_methods()
    assert rows["identity"][1:4] == ["2D/3D", "multi", "no"]
