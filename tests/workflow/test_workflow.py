"""The Snakemake workflow parses, validates its configuration and plans every stage."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _snakemake(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    return subprocess.run([exe, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(cwd), *args],
                          capture_output=True, text=True)


def test_dry_run_plans_a_dataset_job_per_task(tmp_path):
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config")
    result = _snakemake("-n", "--cores", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "dataset" in result.stdout and result.stdout.count("results/data/") >= 5


def test_invalid_config_fails_before_any_job(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("tasks: [brain_mr]\nscale: huge\n")
    result = _snakemake("-n", "--cores", "1", cwd=tmp_path)
    assert result.returncode != 0
    assert "huge" in result.stdout + result.stderr
